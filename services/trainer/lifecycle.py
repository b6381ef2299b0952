"""Putting a registered version through the gate, and forced promotion; each decision recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import numpy.typing as npt
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.common import compiled
from services.common.database import connect, first_line
from services.common.dataset import Dataset
from services.common.events import record_event
from services.common.features import FEATURE_NAMES
from services.common.model_signing import ModelRefused, TrustedKeys
from services.common.registry import (
    MODEL_NAME,
    RegistryError,
    alias_version,
    current_aliases,
    get_version,
    model_uri,
    move_aliases,
    promote,
    tag_decision,
)
from services.common.signed_artifacts import MODEL_FOLDER, verified_files
from services.common.signing_keys import trusted_keys
from services.common.vocabulary import GateDecision, ModelEvent, Role
from services.trainer.evaluate import Regressor, probe_matrix, probe_problems, scored
from services.trainer.gate import Decision, Figures, Thresholds, decide
from services.trainer.identity import TAG_DATA_DIGEST, TAG_RECIPE_DIGEST
from services.trainer.labelled import fetch_labelled
from services.trainer.paired import Evidence
from services.trainer.registration import TAG_LABELLED_SINCE, TAG_LABELLED_UNTIL
from services.trainer.settings import TrainerSettings


@dataclass(frozen=True)
class GateResult:
    version: int
    champion_before: int | None
    decision: Decision
    candidate: Figures
    champion: Figures | None
    compiled_max_abs_diff: float | None = None  # the candidate's compiled trees against its pipeline
    excluded: dict[str, int] = field(default_factory=dict)  # rows left out because a model trained on them

    def as_dict(self) -> dict[str, Any]:
        def figures(f: Figures | None) -> dict[str, Any] | None:
            if f is None:
                return None
            return {
                "holdout": f.holdout.as_dict(),
                "recent": f.recent.as_dict() if f.recent else None,
                "problems": f.problems,
            }

        return {
            "version": self.version,
            "champion_before": self.champion_before,
            "passed": self.decision.passed,
            "reasons": self.decision.reasons,
            "candidate": figures(self.candidate),
            "champion": figures(self.champion),
            "compiled_max_abs_diff": self.compiled_max_abs_diff,
            "excluded": self.excluded,
            # One object per paired comparison ("recent", "holdout"): services.trainer.paired.Evidence.
            "evidence": {item.comparison: item.as_dict() for item in self.decision.evidence},
        }


def thresholds(settings: TrainerSettings) -> Thresholds:
    return Thresholds(
        min_r2=settings.gate_min_r2,
        max_mae=settings.gate_max_mae,
        min_recent_rows=settings.gate_min_recent_rows,
        recent_margin=settings.gate_recent_margin,
        holdout_margin=settings.gate_holdout_margin,
        noninferiority_margin=settings.gate_noninferiority_margin,
    )


def load_version(client: MlflowClient, keys: TrustedKeys, registered: ModelVersion) -> Regressor:
    """A version's pipeline, loaded from its verified files; ModelRefused when they do not check."""
    try:
        with verified_files(client, registered, keys, [MODEL_FOLDER]) as folder:
            model: Regressor = mlflow.sklearn.load_model(str(folder / MODEL_FOLDER))
    except (MlflowException, OSError) as error:
        raise RegistryError(f"cannot load model version {registered.version}: {first_line(error)}") from error
    return model


def _run_tags(version: ModelVersion, client: MlflowClient) -> dict[str, str]:
    return dict(client.get_run(version.run_id).data.tags) if version.run_id else {}


def _labelled_range(tags: dict[str, str]) -> tuple[datetime, datetime] | None:
    """The production rows a version was trained on, as a time range; None when it saw none."""
    since, until = tags.get(TAG_LABELLED_SINCE), tags.get(TAG_LABELLED_UNTIL)
    if not since or not until:
        return None
    return datetime.fromisoformat(since), datetime.fromisoformat(until)


def _training_digest(tags: dict[str, str]) -> str | None:
    """The data and recipe digests together; None when either was not recorded (older versions)."""
    data, recipe = tags.get(TAG_DATA_DIGEST), tags.get(TAG_RECIPE_DIGEST)
    return f"{data}:{recipe}" if data and recipe else None


def _unseen_mask(rows: npt.NDArray[np.float64], seen: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.bool_]:
    """Rows whose features no model in the comparison trained on (production rows may replay any row)."""
    trained = {tuple(row) for matrix in seen for row in matrix.tolist()}
    if not trained:
        return np.ones(len(rows), dtype=bool)
    return np.array([tuple(row) not in trained for row in rows.tolist()], dtype=bool)


def _signature_problems(version: int) -> list[str]:
    info = mlflow.models.get_model_info(model_uri(version))
    names = info.signature.inputs.input_names() if info.signature else []
    if list(names) != list(FEATURE_NAMES):
        return [f"the signature's inputs {names} are not the feature schema {list(FEATURE_NAMES)}"]
    return []


def compiled_parity(
    client: MlflowClient,
    keys: TrustedKeys,
    version: ModelVersion,
    pipeline: Regressor,
    x: npt.NDArray[np.float64],
) -> tuple[float | None, list[str]]:
    """(largest difference, problems) of the version's compiled trees against its pipeline on ``x``.

    A version without a compiled form has nothing to check: the server serves its pipeline. Raises
    ModelRefused when the checkpoint is not signed or altered.
    """
    if compiled.TAG_COMPILED not in (version.tags or {}):
        return None, []
    try:
        with verified_files(client, version, keys, [compiled.COMPILED_ARTIFACT]) as folder:
            tree_model = compiled.load(folder / compiled.COMPILED_ARTIFACT)
        difference = compiled.max_abs_difference(tree_model.predict(x), pipeline.predict(x))
    except ModelRefused:
        raise
    except Exception as error:  # a missing or corrupt artifact, or treelite refusing it
        return None, [f"the compiled form of version {version.version} cannot be used: {first_line(error)}"]
    if difference > compiled.PARITY_TOLERANCE:
        return difference, [
            f"the compiled trees predict up to {difference:.3g} away from the pipeline on {len(x)} holdout"
            f" rows (more than {compiled.PARITY_TOLERANCE:g}): the server would serve other prices"
        ]
    return difference, []


def gate_version(
    client: MlflowClient,
    database_url: str,
    dataset: Dataset,
    settings: TrainerSettings,
    version: int,
    *,
    actor: str,
    now: datetime | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> GateResult:
    """Judge ``version`` against the champion on the same rows; promote it or reject it, and record why.

    Both models are measured on the reference holdout minus any row either trained on, and on the
    labelled production rows newer than anything either trained on, minus any row whose features
    either trained on (a replayed holdout, labelled or base row).
    """
    now = now or datetime.now(UTC)
    candidate_mv = get_version(client, version)
    champion_mv = alias_version(client, Role.CHAMPION)
    if champion_mv is not None and int(champion_mv.version) == version:
        raise RegistryError(f"version {version} is already the champion")
    tags = [_run_tags(mv, client) if mv else {} for mv in (candidate_mv, champion_mv)]
    window_start = now - timedelta(hours=settings.train_labelled_window_hours)
    rows = _comparison_rows(database_url, dataset, tags, window_start)
    say(f"comparing on {len(rows.y_holdout)} holdout rows and {len(rows.y_recent)} recent labelled rows")

    keys = trusted_keys(settings)
    # Both versions are checked before either is scored: a refused one stops the gate (ModelRefused).
    candidate_model = load_version(client, keys, candidate_mv)
    champion_model = load_version(client, keys, champion_mv) if champion_mv is not None else None
    probe = probe_matrix(dataset.x_holdout[:200])
    difference, compiled_problems = compiled_parity(
        client, keys, candidate_mv, candidate_model, dataset.x_holdout
    )
    problems = _signature_problems(version) + probe_problems(candidate_model, probe) + compiled_problems
    candidate = rows.figures(candidate_model, problems, _training_digest(tags[0]))
    champion = None
    if champion_model is not None:
        champion = rows.figures(champion_model, [], _training_digest(tags[1]))
    decision = decide(candidate, champion, thresholds(settings))
    result = GateResult(
        version,
        int(champion_mv.version) if champion_mv else None,
        decision,
        candidate,
        champion,
        difference,
        rows.excluded,
    )
    _apply(client, database_url, result, actor=actor)
    return result


@dataclass(frozen=True)
class ComparisonRows:
    """The rows both models are scored on: the unseen holdout and the unseen recent labelled rows."""

    x_holdout: npt.NDArray[np.float64]
    y_holdout: npt.NDArray[np.float64]
    x_recent: npt.NDArray[np.float64]
    y_recent: npt.NDArray[np.float64]
    excluded: dict[str, int]

    def figures(self, model: Regressor, problems: list[str], digest: str | None) -> Figures:
        holdout, holdout_errors = scored(model, self.x_holdout, self.y_holdout)
        recent, recent_errors = scored(model, self.x_recent, self.y_recent)
        return Figures(holdout, recent, problems, holdout_errors, recent_errors, digest)


def _comparison_rows(
    database_url: str, dataset: Dataset, tags: list[dict[str, str]], window_start: datetime
) -> ComparisonRows:
    """The holdout and recent rows neither model trained on (``tags``: both versions' run tags)."""
    ranges = [r for t in tags if (r := _labelled_range(t))]
    with connect(database_url) as conn:
        seen = [fetch_labelled(conn, since).until(until).x for since, until in ranges]
        after = max((until for _, until in ranges), default=None)
        recent = fetch_labelled(conn, window_start, after)
    holdout_mask = _unseen_mask(dataset.x_holdout, seen)
    recent_mask = _unseen_mask(recent.x, [*seen, dataset.x_train])
    return ComparisonRows(
        dataset.x_holdout[holdout_mask],
        dataset.y_holdout[holdout_mask],
        recent.x[recent_mask],
        recent.y[recent_mask],
        {"holdout": int((~holdout_mask).sum()), "recent": int((~recent_mask).sum())},
    )


def _apply(client: MlflowClient, database_url: str, result: GateResult, *, actor: str) -> None:
    """Move the aliases and write the event together: the event commits only after the aliases moved."""
    passed = result.decision.passed
    with connect(database_url) as conn:
        record_event(
            conn,
            ModelEvent.PROMOTED if passed else ModelEvent.REJECTED,
            result.version,
            actor=actor,
            previous_version=result.champion_before,
            reasons=result.decision.reasons,
            figures=result.as_dict(),
        )
        if passed:
            before = current_aliases(client)
            promote(client, result.version)
            _commit_or_restore(conn, client, before)
            tag_decision(client, result.version, GateDecision.PASSED, result.decision.reasons)
            _tag_evidence(client, result.version, result.decision.evidence)
        else:
            if current_aliases(client)[Role.CHALLENGER] == result.version:
                move_aliases(client, {Role.CHALLENGER: None})
            conn.commit()
            tag_decision(client, result.version, GateDecision.REJECTED, result.decision.reasons)
            _tag_evidence(client, result.version, result.decision.evidence)


# The evidence figures a version is tagged with, per comparison: gate.<comparison>.<figure>.
EVIDENCE_TAG_FIGURES = ("rows", "difference", "lower", "upper", "margin", "mde", "passed")
TAG_EVIDENCE = "gate.evidence"  # JSON: {comparison: Evidence.as_dict()}


def _tag_evidence(client: MlflowClient, version: int, evidence: list[Evidence]) -> None:
    """Tag the version with its evidence: the whole as JSON, and each comparison's figures flat."""
    tags = {TAG_EVIDENCE: json.dumps({item.comparison: item.as_dict() for item in evidence})}
    for item in evidence:
        figures = item.as_dict()
        tags |= {f"gate.{item.comparison}.{name}": str(figures[name]) for name in EVIDENCE_TAG_FIGURES}
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, str(version), key, value)


def _commit_or_restore(conn: Any, client: MlflowClient, before: dict[Role, int | None]) -> None:
    """Commit the event; if that fails, put the aliases back as they were."""
    try:
        conn.commit()
    except Exception:
        move_aliases(client, before)
        raise


def force_promote(
    client: MlflowClient, database_url: str, version: int, *, actor: str, reason: str
) -> int | None:
    """Make ``version`` champion without the gate, recording who and why. Returns the old champion."""
    get_version(client, version)
    before = current_aliases(client)
    old = before[Role.CHAMPION]
    reasons = [f"forced past the gate: {reason}"]
    with connect(database_url) as conn:
        record_event(conn, ModelEvent.FORCED, version, actor=actor, previous_version=old, reasons=reasons)
        promote(client, version)
        _commit_or_restore(conn, client, before)
    tag_decision(client, version, GateDecision.FORCED, reasons)
    return old
