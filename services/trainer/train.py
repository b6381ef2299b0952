"""``housing train``: data → fit → evaluate → register → gate, with a line of progress per stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from services.common.database import connect
from services.common.dataset import Dataset
from services.common.error_model import ErrorModel, fit_error_model
from services.common.estimate_band import EstimateBand
from services.common.events import record_event
from services.common.profile import build_profile
from services.common.progress import Stages
from services.common.registry import (
    METRIC_RECENT_MAE,
)
from services.common.signing_keys import signer
from services.common.vocabulary import ModelEvent
from services.trainer.evaluate import Metrics as EvaluationMetrics
from services.trainer.evaluate import evaluate
from services.trainer.labelled import LabelledRows, fetch_labelled
from services.trainer.lifecycle import GateResult, gate_version
from services.trainer.model import fit_model
from services.trainer.registration import TrainingRecord, estimate_band, register_candidate
from services.trainer.settings import TrainerSettings

# The reference profile is the world the model was validated for: the newest labelled rows (the gate's
# part) when there are this many, else its training rows. A retrain after a covariate shift thus takes
# the shifted world as its reference, and the monitor stops calling drift on traffic the new champion
# was judged on (otherwise every later run would retrain again).
PROFILE_MIN_RECENT_ROWS = 500


@dataclass(frozen=True)
class TrainSummary:
    version: int
    run_id: str
    metrics: dict[str, float]
    base_rows: int
    labelled_train_rows: int
    labelled_gate_rows: int
    gate: GateResult | None
    undefined: dict[str, str] = field(default_factory=dict)  # metric name → why it is not in ``metrics``

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "undefined": self.undefined,
            "base_rows": self.base_rows,
            "labelled_train_rows": self.labelled_train_rows,
            "labelled_gate_rows": self.labelled_gate_rows,
            "promoted": bool(self.gate and self.gate.decision.passed),
            "gate": self.gate.as_dict() if self.gate else None,
        }


def run_training(
    client: MlflowClient,
    experiment_id: str,
    database_url: str,
    dataset: Dataset,
    settings: TrainerSettings,
    *,
    promote: bool = True,
    actor: str = "housing train",
    stages: Stages | None = None,
    now: datetime | None = None,
) -> TrainSummary:
    """Train a candidate on the base set plus older labelled production rows, register it, and gate it."""
    stages = stages or Stages(5 if promote else 4, quiet=True)
    now = now or datetime.now(UTC)
    # Before any fitting: a trainer without its key would train for minutes and then not register.
    version_signer = signer(settings, settings.model_signing_key)
    since = now - timedelta(hours=settings.train_labelled_window_hours)

    with stages.stage("reading labelled production rows"):
        with connect(database_url) as conn:
            labelled = fetch_labelled(conn, since)
        older, newest = labelled.split(settings.train_recent_holdout_fraction)
        stages.say(
            f"{len(labelled)} rows: {len(older)} to train on, {len(newest)} kept for the gate", end=" "
        )

    with stages.stage(f"fitting on {len(dataset.y_train)} base + {len(older)} labelled rows"):
        fitted = _fit(dataset, older, settings)
        if fitted.error_model is not None:
            stages.say(f"error model on {settings.error_model_folds}-fold out-of-fold errors", end=" ")

    with stages.stage("evaluating on the reference holdout"):
        metrics, undefined, holdout = _metrics(fitted.model, dataset, newest)
        stages.say(f"R² {_shown(holdout.r2)}, MAE {_shown(holdout.mae)}", end=" ")

    with stages.stage("registering in MLflow"):
        record = _training_record(
            dataset, fitted, older, newest, since, metrics, undefined, chunk_rows=settings.drift_min_rows
        )
        version, run_id = register_candidate(client, experiment_id, record, version_signer)
        with connect(database_url) as conn:
            figures: dict[str, Any] = {**metrics, "undefined": undefined}
            band = record.estimate_band
            figures["estimate_band"] = band.as_dict() if band is not None else record.estimate_band_skipped
            record_event(conn, ModelEvent.REGISTERED, version, actor=actor, figures=figures)
        stages.say(f"version {version}", end=" ")

    gate = None
    if promote:
        with stages.stage("validation gate"):
            gate = gate_version(client, database_url, dataset, settings, version, actor=actor, now=now)
            stages.say("passed: promoted to champion" if gate.decision.passed else "rejected", end=" ")
    return TrainSummary(
        version, run_id, metrics, len(dataset.y_train), len(older), len(newest), gate, undefined
    )


@dataclass(frozen=True)
class _Fitted:
    """The candidate and what it was fitted on (base rows, then the older labelled rows)."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    model: Pipeline
    error_model: ErrorModel | None


def _fit(dataset: Dataset, older: LabelledRows, settings: TrainerSettings) -> _Fitted:
    """Fit the candidate (and its error model, unless ERROR_MODEL_FOLDS=0) on base + older labelled rows."""
    x = np.vstack([dataset.x_train, older.x])
    y = np.concatenate([dataset.y_train, older.y])
    weights = np.concatenate(
        [np.ones(len(dataset.y_train)), np.full(len(older), settings.train_recent_weight)]
    )
    model = fit_model(x, y, weights)
    error_model = None
    if settings.error_model_folds:
        error_model = fit_error_model(x, y, _fitter, weights=weights, folds=settings.error_model_folds)
    return _Fitted(x, y, weights, model, error_model)


def _metrics(
    model: Pipeline, dataset: Dataset, newest: LabelledRows
) -> tuple[dict[str, float], dict[str, str], EvaluationMetrics]:
    """(metrics, why each undefined one is, the holdout evaluation): the holdout and newest rows' MAE.

    Raises:
        ValueError: the model has no MAE on the reference holdout.
    """
    holdout = evaluate(model, dataset.x_holdout, dataset.y_holdout)
    if holdout.mae is None:
        raise ValueError(f"the fitted model has no MAE on the reference holdout: {holdout.undefined['mae']}")
    metrics, undefined = holdout.as_holdout_metrics(), holdout.holdout_undefined()
    recent = evaluate(model, newest.x, newest.y)
    if recent.mae is not None:
        metrics[METRIC_RECENT_MAE] = recent.mae
    else:
        undefined[METRIC_RECENT_MAE] = recent.undefined["mae"]
    return metrics, undefined, holdout


def _training_record(
    dataset: Dataset,
    fitted: _Fitted,
    older: LabelledRows,
    newest: LabelledRows,
    since: datetime,
    metrics: dict[str, float],
    undefined: dict[str, str],
    *,
    chunk_rows: int,
) -> TrainingRecord:
    """What registration stores of the candidate: its rows, figures, reference profile and estimate band
    (both on the newest labelled rows when there are PROFILE_MIN_RECENT_ROWS, else the holdout's and the
    training rows')."""
    recent_reference = len(newest) >= PROFILE_MIN_RECENT_ROWS
    band, band_skipped = _band(
        fitted,
        newest.x if recent_reference else dataset.x_holdout,
        newest.y if recent_reference else dataset.y_holdout,
        reference="recent" if recent_reference else "holdout",
        chunk_rows=chunk_rows,
    )
    return TrainingRecord(
        model=fitted.model,
        x_train=fitted.x,
        y_train=fitted.y,
        base_rows=len(dataset.y_train),
        labelled_rows=len(older),
        labelled_since=since,
        labelled_until=older.at[-1] if len(older) else None,
        metrics=metrics,
        undefined=undefined,
        profile=build_profile(newest.x if recent_reference else fitted.x),
        error_model=fitted.error_model,
        weights=fitted.weights,
        estimate_band=band,
        estimate_band_skipped=band_skipped,
    )


def _band(
    fitted: _Fitted,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    *,
    reference: str,
    chunk_rows: int,
) -> tuple[EstimateBand | None, str | None]:
    """(the label-free estimate's band on reference rows (x, y), None) or (None, why there is none)."""
    if fitted.error_model is None:
        return None, "no error model (ERROR_MODEL_FOLDS=0): no estimate, no band"
    try:
        band = estimate_band(
            fitted.model, fitted.error_model, x, y, reference=reference, chunk_rows=chunk_rows
        )
    except ValueError as error:
        return None, f"no band: {error}"
    return band, None


def _fitter(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], weights: npt.NDArray[np.float64] | None
) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """The model as trained here, fitted on one fold: its predict (for the error model's errors)."""
    model = fit_model(x, y, weights)

    def predict(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        with threadpool_limits(1):
            return np.asarray(model.predict(rows), dtype=np.float64)

    return predict


def _shown(figure: float | None) -> str:
    return "undefined" if figure is None else f"{figure:.3f}"
