"""MLflow registry conventions: the model's name, its aliases, and moving them safely.

A model version's place in the loop is told by aliases, never by stages (deprecated in MLflow):
``champion`` is served, ``challenger`` waits for the gate, ``previous`` is where a rollback goes.
Alias moves are made all-or-nothing here: on a failure half-way, the aliases are put back.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from services.common.database import first_line
from services.common.vocabulary import GateDecision, Role

log = logging.getLogger(__name__)

MODEL_NAME = "cali-housing"
EXPERIMENT_NAME = "cali-housing"
ALIASES = tuple(Role)  # champion, challenger, previous: services/common/vocabulary.py

# Run artifacts and metrics the services agree on.
MODEL_ARTIFACT = "model"
PROFILE_ARTIFACT = "reference/profile.json"
ERROR_MODEL_ARTIFACT = "error_model/error_model.joblib"  # services/common/error_model.py; absent before it
# Its trees compiled by treelite (services/common/compiled.py): what the monitor reads when present.
ERROR_MODEL_COMPILED_ARTIFACT = "error_model/model.tl"
METRIC_ERROR_MODEL_OOF_MAE = "error_model_oof_mae"
# The compiled error model's largest difference from the regressor on the training rows.
METRIC_ERROR_MODEL_COMPILED_DIFF = "error_model_compiled_max_abs_diff"
METRIC_HOLDOUT_MAE = "holdout_mae"
METRIC_HOLDOUT_R2 = "holdout_r2"
METRIC_HOLDOUT_RMSE = "holdout_rmse"
METRIC_RECENT_MAE = "recent_mae"

# Tags on model versions, written by the gate and by every alias move.
TAG_DECISION = "gate.decision"  # a GateDecision
# The trainer's run tags: the oldest production row it read (its TRAIN_LABELLED_WINDOW_HOURS back) and
# the newest labelled one it trained on ("" when none): the monitor counts the labels newer than that.
TAG_LABELLED_SINCE = "train.labelled_since"
TAG_LABELLED_UNTIL = "train.labelled_until"
TAG_REASONS = "gate.reasons"  # JSON list of sentences


class RegistryError(RuntimeError):
    """A registry request failed, or asked for something that is not there; the message names the fix."""


def model_uri(alias_or_version: str | int) -> str:
    """``models:/cali-housing@champion`` for an alias, ``models:/cali-housing/3`` for a version."""
    if isinstance(alias_or_version, int) or str(alias_or_version).isdigit():
        return f"models:/{MODEL_NAME}/{alias_or_version}"
    return f"models:/{MODEL_NAME}@{alias_or_version}"


def alias_version(client: MlflowClient, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    try:
        return client.get_model_version_by_alias(MODEL_NAME, alias)
    except RestException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise RegistryError(f"the MLflow registry refused a request: {error.message}") from error
    except MlflowException as error:
        if "not found" in str(error).lower() or "does not exist" in str(error).lower():
            return None
        raise RegistryError(
            f"the MLflow registry is unreachable ({first_line(error)}); check MLFLOW_TRACKING_URI"
        ) from error


def current_aliases(client: MlflowClient) -> dict[Role, int | None]:
    """Every alias of the model with the version it points at (None when unset)."""
    return {
        alias: int(version.version) if (version := alias_version(client, alias)) else None
        for alias in ALIASES
    }


def get_version(client: MlflowClient, version: int) -> ModelVersion:
    """A model version, or RegistryError saying which versions exist."""
    try:
        return client.get_model_version(MODEL_NAME, str(version))
    except MlflowException as error:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
        raise RegistryError(
            f"model version {version} of {MODEL_NAME} does not exist"
            + (
                f"; known versions: {', '.join(map(str, known))}"
                if known
                else "; train one with `housing train`"
            )
        ) from error


def move_aliases(client: MlflowClient, changes: Mapping[Role, int | None]) -> None:
    """Point each alias at a version (None deletes it), all or nothing.

    On a failure half-way the aliases already moved are put back as they were before the call,
    and a RegistryError says what failed.
    """
    before = current_aliases(client)
    done: list[Role] = []
    try:
        for alias, version in changes.items():
            if version is None:
                if before.get(alias) is not None:
                    client.delete_registered_model_alias(MODEL_NAME, alias)
            else:
                client.set_registered_model_alias(MODEL_NAME, alias, str(version))
            done.append(alias)
    except MlflowException as error:
        for alias in reversed(done):
            try:
                if before[alias] is None:
                    client.delete_registered_model_alias(MODEL_NAME, alias)
                else:
                    client.set_registered_model_alias(MODEL_NAME, alias, str(before[alias]))
            except MlflowException:  # the registry is gone for good; say so below
                log.exception("could not restore alias %s to %s", alias, before[alias])
        raise RegistryError(
            f"could not move aliases {dict(changes)} ({first_line(error)}); "
            "the aliases were restored. Check MLFLOW_TRACKING_URI and retry."
        ) from error


def tag_decision(client: MlflowClient, version: int, decision: GateDecision, reasons: list[str]) -> None:
    """Record a lifecycle decision and its reasons as tags on the version."""
    client.set_model_version_tag(MODEL_NAME, str(version), TAG_DECISION, decision)
    client.set_model_version_tag(MODEL_NAME, str(version), TAG_REASONS, json.dumps(reasons))


def promote(client: MlflowClient, version: int) -> int | None:
    """Make ``version`` the champion; the old champion becomes ``previous``. Returns the old champion."""
    aliases = current_aliases(client)
    old = aliases[Role.CHAMPION]
    if old == version:
        raise RegistryError(f"version {version} is already the champion")
    changes: dict[Role, int | None] = {Role.CHAMPION: version}
    if old is not None:
        changes[Role.PREVIOUS] = old
    if aliases[Role.CHALLENGER] == version:
        changes[Role.CHALLENGER] = None
    move_aliases(client, changes)
    return old


def rollback(client: MlflowClient, *, to: int | None = None, dry_run: bool = False) -> tuple[int, int]:
    """Put ``to`` (default: ``previous``) back as champion and clear ``previous``; returns (bad, restored).

    With ``dry_run`` only check that a rollback is possible.
    """
    aliases = current_aliases(client)
    bad, good = aliases[Role.CHAMPION], aliases[Role.PREVIOUS] if to is None else to
    if bad is None:
        raise RegistryError("there is no champion to roll back; train one with `housing train`")
    if good is None:
        raise RegistryError(
            f"champion v{bad} has no previous version to roll back to; promote another version "
            "with `housing promote VERSION`"
        )
    if good == bad:
        raise RegistryError(f"version {good} is already the champion: nothing to roll back to")
    get_version(client, good)  # a version that does not exist is refused before any alias moves
    if not dry_run:
        move_aliases(client, {Role.CHAMPION: good, Role.PREVIOUS: None})
    return bad, good


@dataclass(frozen=True)
class VersionFigures:
    """A registered version's training figures, read from its run."""

    version: int
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]


def version_figures(client: MlflowClient, version: ModelVersion) -> VersionFigures:
    """The run's finite metrics and the version's tags.

    A run logged before undefined figures became tags may hold a NaN metric: it counts as absent, so a
    reader never compares with it or stores it.
    """
    metrics: dict[str, float] = {}
    if version.run_id:
        logged = client.get_run(version.run_id).data.metrics
        metrics = {name: value for name, value in logged.items() if math.isfinite(value)}
    return VersionFigures(int(version.version), version.run_id or "", metrics, dict(version.tags or {}))


def ensure_experiment(client: MlflowClient, artifact_root: Path | None) -> str:
    """The id of the project's experiment, created (with its artifact folder, if given) when missing."""
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = artifact_root.resolve().as_uri() if artifact_root else None
    return str(client.create_experiment(EXPERIMENT_NAME, artifact_location=location))
