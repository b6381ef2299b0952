"""Putting a registered version through the gate, and forced promotion; each decision recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from services.common.registry import (
    RegistryError,
    alias_version,
    current_aliases,
    get_version,
    model_uri,
    move_aliases,
    promote,
    tag_decision,
)
from services.common.vocabulary import GateDecision, ModelEvent, Role
from services.trainer.evaluate import Regressor, evaluate, probe_matrix, probe_problems
from services.trainer.gate import Decision, Figures, Thresholds, decide
from services.trainer.labelled import LabelledRows, fetch_labelled
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
        }


def thresholds(settings: TrainerSettings) -> Thresholds:
    return Thresholds(
        min_r2=settings.gate_min_r2,
        max_mae=settings.gate_max_mae,
        holdout_tolerance=settings.gate_holdout_tolerance,
        shifted_holdout_tolerance=settings.gate_shifted_holdout_tolerance,
        min_recent_rows=settings.gate_min_recent_rows,
    )


def load_version(version: int) -> Regressor:
    try:
        model: Regressor = mlflow.sklearn.load_model(model_uri(version))
    except (MlflowException, OSError) as error:
        raise RegistryError(f"cannot load model version {version}: {first_line(error)}") from error
    return model


def _labelled_range(version: ModelVersion, client: MlflowClient) -> tuple[datetime, datetime] | None:
    """The production rows a version was trained on, as a time range; None when it saw none."""
    if not version.run_id:
        return None
    tags = client.get_run(version.run_id).data.tags
    since, until = tags.get(TAG_LABELLED_SINCE), tags.get(TAG_LABELLED_UNTIL)
    if not since or not until:
        return None
    return datetime.fromisoformat(since), datetime.fromisoformat(until)


def _unseen_holdout_mask(holdout: npt.NDArray[np.float64], seen: list[LabelledRows]) -> npt.NDArray[np.bool_]:
    """Holdout rows no model in the comparison trained on (production rows may replay holdout rows)."""
    trained = {tuple(row) for rows in seen for row in rows.x.tolist()}
    if not trained:
        return np.ones(len(holdout), dtype=bool)
    return np.array([tuple(row) not in trained for row in holdout.tolist()], dtype=bool)


def _signature_problems(version: int) -> list[str]:
    info = mlflow.models.get_model_info(model_uri(version))
    names = info.signature.inputs.input_names() if info.signature else []
    if list(names) != list(FEATURE_NAMES):
        return [f"the signature's inputs {names} are not the feature schema {list(FEATURE_NAMES)}"]
    return []


def compiled_parity(
    client: MlflowClient, version: ModelVersion, pipeline: Regressor, x: npt.NDArray[np.float64]
) -> tuple[float | None, list[str]]:
    """(largest difference, problems) of the version's compiled trees against its pipeline on ``x``.

    A version without a compiled form has nothing to check: the server serves its pipeline.
    """
    if compiled.TAG_COMPILED not in (version.tags or {}):
        return None, []
    try:
        tree_model = compiled.load_from_run(client, version.run_id or "")
        difference = compiled.max_abs_difference(tree_model.predict(x), pipeline.predict(x))
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
    labelled production rows newer than anything either trained on.
    """
    now = now or datetime.now(UTC)
    candidate_mv = get_version(client, version)
    champion_mv = alias_version(client, Role.CHAMPION)
    if champion_mv is not None and int(champion_mv.version) == version:
        raise RegistryError(f"version {version} is already the champion")
    window_start = now - timedelta(hours=settings.train_labelled_window_hours)

    with connect(database_url) as conn:
        ranges = [r for mv in (candidate_mv, champion_mv) if mv and (r := _labelled_range(mv, client))]
        seen = [fetch_labelled(conn, since).until(until) for since, until in ranges]
        after = max((until for _, until in ranges), default=None)
        recent = fetch_labelled(conn, window_start, after)
    mask = _unseen_holdout_mask(dataset.x_holdout, seen)
    x_holdout, y_holdout = dataset.x_holdout[mask], dataset.y_holdout[mask]
    say(f"comparing on {len(y_holdout)} holdout rows and {len(recent)} recent labelled rows")

    candidate_model = load_version(version)
    probe = probe_matrix(dataset.x_holdout[:200])
    difference, compiled_problems = compiled_parity(client, candidate_mv, candidate_model, dataset.x_holdout)
    candidate = Figures(
        holdout=evaluate(candidate_model, x_holdout, y_holdout),
        recent=evaluate(candidate_model, recent.x, recent.y),
        problems=_signature_problems(version) + probe_problems(candidate_model, probe) + compiled_problems,
    )
    champion = None
    if champion_mv is not None:
        champion_model = load_version(int(champion_mv.version))
        champion = Figures(
            holdout=evaluate(champion_model, x_holdout, y_holdout),
            recent=evaluate(champion_model, recent.x, recent.y),
        )
    decision = decide(candidate, champion, thresholds(settings))
    result = GateResult(
        version, int(champion_mv.version) if champion_mv else None, decision, candidate, champion, difference
    )
    _apply(client, database_url, result, actor=actor)
    return result


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
        else:
            if current_aliases(client)[Role.CHALLENGER] == result.version:
                move_aliases(client, {Role.CHALLENGER: None})
            conn.commit()
            tag_decision(client, result.version, GateDecision.REJECTED, result.decision.reasons)


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
