"""Logging a trained candidate to MLflow: run, figures, data digest, reference profile, registered version."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

import mlflow
import mlflow.data
import mlflow.data.pandas_dataset
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from sklearn.pipeline import Pipeline

from services.common import compiled
from services.common.error_model import CompiledErrorModel, ErrorModel, save_error_model
from services.common.estimate_band import (
    TAG_ESTIMATE_BAND,
    TAG_ESTIMATE_BAND_SKIPPED,
    EstimateBand,
    measure_band,
)
from services.common.features import EXAMPLE, FEATURE_NAMES, TARGET
from services.common.finite import NON_FINITE, finite_document
from services.common.model_signing import Signer
from services.common.profile import ReferenceProfile
from services.common.registry import (
    ERROR_MODEL_ARTIFACT,
    ERROR_MODEL_COMPILED_ARTIFACT,
    METRIC_ERROR_MODEL_COMPILED_DIFF,
    METRIC_ERROR_MODEL_OOF_MAE,
    MODEL_ARTIFACT,
    MODEL_NAME,
    PROFILE_ARTIFACT,
    TAG_LABELLED_SINCE,
    TAG_LABELLED_UNTIL,
)
from services.common.signed_artifacts import sign_version
from services.common.vocabulary import Role
from services.trainer.identity import TAG_DATA_DIGEST, TAG_RECIPE_DIGEST, data_digest, recipe_digest
from services.trainer.model import PARAMS

# MLflow saves scikit-learn models with skops by default, and skops refuses HistGradientBoosting's
# TreePredictor (MLflow 3.17, skops 0.13): cloudpickle, decided here once.
SERIALIZATION = "cloudpickle"

# An undefined figure is not logged as a metric (MLflow would store NaN, and every chart and threshold
# would read it); the run gets the tag ``<metric>.undefined`` with the reason instead.
UNDEFINED_TAG_SUFFIX = ".undefined"


def _requirements() -> list[str]:
    return [
        f"{name}=={metadata.version(name)}" for name in ("scikit-learn", "numpy", "cloudpickle", "mlflow")
    ]


def signature() -> ModelSignature:
    """The model's signature is the feature schema: eight doubles in order, one double out."""
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in FEATURE_NAMES]),
        outputs=Schema([ColSpec("double", TARGET)]),
    )


@dataclass(frozen=True)
class TrainingRecord:
    """Everything the run records about one candidate."""

    model: Pipeline
    x_train: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.float64]
    base_rows: int
    labelled_rows: int
    labelled_since: datetime
    labelled_until: datetime | None
    metrics: dict[str, float]
    profile: ReferenceProfile
    undefined: dict[str, str] = field(default_factory=dict)  # metric name → why it is not in ``metrics``
    error_model: ErrorModel | None = None  # None: ERROR_MODEL_FOLDS=0, the monitor makes no estimate
    weights: npt.NDArray[np.float64] | None = None  # sample weights (None: all 1), part of the data digest
    estimate_band: EstimateBand | None = None  # see estimate_band(); None: why in estimate_band_skipped
    estimate_band_skipped: str | None = None


def run_figures(record: TrainingRecord) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics to log, tags for the undefined ones): a non-finite metric becomes a tag too."""
    checked = finite_document(record.metrics, where="the MLflow run metrics")
    nulled: dict[str, str] = checked.pop(NON_FINITE, {})
    metrics = {name: value for name, value in checked.items() if value is not None}
    reasons = {**record.undefined, **nulled}
    return metrics, {f"{name}{UNDEFINED_TAG_SUFFIX}": why for name, why in reasons.items()}


def register_candidate(
    client: MlflowClient, experiment_id: str, record: TrainingRecord, signer: Signer
) -> tuple[int, str]:
    """Log the run and register the model as a new version aliased ``challenger``; (version, run id).

    The version is signed (services/common/signed_artifacts.py) after every artifact a reader opens is
    logged and before the alias points at it: readers refuse a version without the signature.
    """
    train_frame = pd.DataFrame(record.x_train, columns=list(FEATURE_NAMES))
    train_frame[TARGET] = record.y_train
    with mlflow.start_run(experiment_id=experiment_id, run_name="train") as run:
        mlflow.log_params({f"model.{key}": value for key, value in PARAMS.items()})
        mlflow.log_params({"base_rows": record.base_rows, "labelled_rows": record.labelled_rows})
        metrics, undefined_tags = run_figures(record)
        mlflow.log_metrics(metrics)
        mlflow.log_input(
            mlflow.data.pandas_dataset.from_pandas(
                train_frame, name="california-housing+labelled", targets=TARGET
            ),
            context="training",
        )
        mlflow.set_tags(
            {
                TAG_LABELLED_SINCE: record.labelled_since.isoformat(),
                TAG_LABELLED_UNTIL: record.labelled_until.isoformat() if record.labelled_until else "",
                # What the gate compares to refuse a twin of the champion (services.trainer.identity).
                TAG_DATA_DIGEST: data_digest(record.x_train, record.y_train, record.weights),
                TAG_RECIPE_DIGEST: recipe_digest(record.model),
                **undefined_tags,
            }
        )
        with tempfile.TemporaryDirectory() as folder:
            path = record.profile.save(Path(folder) / Path(PROFILE_ARTIFACT).name)
            mlflow.log_artifact(str(path), artifact_path=str(Path(PROFILE_ARTIFACT).parent))
            if record.error_model is not None:
                path = Path(folder) / Path(ERROR_MODEL_ARTIFACT).name
                save_error_model(record.error_model, path)
                mlflow.log_artifact(str(path), artifact_path=str(Path(ERROR_MODEL_ARTIFACT).parent))
                mlflow.log_metric(METRIC_ERROR_MODEL_OOF_MAE, record.error_model.out_of_fold_mae)
                mlflow.log_param("error_model.folds", record.error_model.folds)
                _log_compiled_error_model(record, Path(folder))
        version = _log_model(record.model)
        runtime = _log_compiled(record.model)
    if runtime is not None:
        client.set_model_version_tag(MODEL_NAME, str(version), compiled.TAG_COMPILED, runtime)
    _tag_estimate_band(client, version, record)
    sign_version(client, version, signer)
    client.set_registered_model_alias(MODEL_NAME, Role.CHALLENGER, str(version))
    return version, run.info.run_id


def _log_model(model: Pipeline) -> int:
    """Log ``model`` to the active run and register it under MODEL_NAME; returns the new version."""
    with warnings.catch_warnings():
        # MLflow checks the input example through pyfunc, which passes a DataFrame to a model
        # fitted on numpy (on purpose, see model.py): scikit-learn's name warning is expected.
        warnings.filterwarnings("ignore", message="X has feature names")
        warnings.filterwarnings("ignore", message="Saving scikit-learn models in the pickle")
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature(),
            input_example=pd.DataFrame([EXAMPLE], columns=list(FEATURE_NAMES)),
            registered_model_name=MODEL_NAME,
            serialization_format=SERIALIZATION,
            # Stated, not inferred: inference runs the model in a subprocess (seconds per run).
            pip_requirements=_requirements(),
        )
    return int(info.registered_model_version or 0)


def estimate_band(
    model: Pipeline,
    error_model: ErrorModel,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    *,
    reference: str,
    chunk_rows: int,
) -> EstimateBand:
    """The label-free estimate's band (services/common/estimate_band.py) on reference rows (x, y) that
    neither the model nor its error model trained on, in chunks of ``chunk_rows`` (DRIFT_MIN_ROWS).

    The trainer passes the rows the reference profile describes: the gate's newest labelled rows when
    there are enough of them (a retrain after a shift is judged in the shifted world), else the
    reference holdout. Not the out-of-fold rows: the error model was fitted on them, so its estimate
    there is in-sample (its mean is the out-of-fold MAE by construction, its spread too wide), and
    their predictions come from fold models, not from the model the monitor watches. Raises ValueError
    (no rows, a non-finite error).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        predictions = np.asarray(model.predict(x), dtype=np.float64)
    return measure_band(
        error_model.row_errors(x, predictions),
        np.abs(predictions - np.asarray(y, dtype=np.float64)),
        chunk_rows=chunk_rows,
        reference=reference,
    )


def _tag_estimate_band(client: MlflowClient, version: int, record: TrainingRecord) -> None:
    """The band as the version's ``estimate.band`` tag, or why there is none (the monitor then keeps the
    old rule: the estimate against the holdout MAE by ESTIMATED_MAE_TOLERANCE)."""
    if record.estimate_band is not None:
        client.set_model_version_tag(
            MODEL_NAME, str(version), TAG_ESTIMATE_BAND, record.estimate_band.to_tag()
        )
    elif record.estimate_band_skipped:
        client.set_model_version_tag(
            MODEL_NAME, str(version), TAG_ESTIMATE_BAND_SKIPPED, record.estimate_band_skipped
        )


def _log_compiled_error_model(record: TrainingRecord, folder: Path) -> None:
    """Log the error model's compiled trees (in the active run) when they predict what its regressor
    does on the training rows; otherwise tag why not (the monitor then unpickles the regressor)."""
    assert record.error_model is not None
    try:
        trees = compiled.compile_pipeline(record.error_model.regressor)
    except compiled.CannotCompile as error:
        mlflow.set_tag(f"{ERROR_MODEL_COMPILED_ARTIFACT}.skipped", str(error))
        return
    path = compiled.save(trees, folder / Path(ERROR_MODEL_COMPILED_ARTIFACT).name)
    difference = error_model_parity(record.error_model, CompiledErrorModel(compiled.load(path)), record)
    if difference > compiled.PARITY_TOLERANCE:
        mlflow.set_tag(
            f"{ERROR_MODEL_COMPILED_ARTIFACT}.skipped",
            f"the compiled trees estimate up to {difference:.3g} away from the regressor on the training"
            " rows",
        )
        return
    mlflow.log_artifact(str(path), artifact_path=str(Path(ERROR_MODEL_COMPILED_ARTIFACT).parent))
    mlflow.log_metric(METRIC_ERROR_MODEL_COMPILED_DIFF, difference)


def error_model_parity(error_model: ErrorModel, trees: CompiledErrorModel, record: TrainingRecord) -> float:
    """The largest difference between the compiled and the pickled per-row errors on the training rows,
    with the model's in-sample predictions as the monitored prices."""
    predictions = np.asarray(record.model.predict(record.x_train), dtype=np.float64)
    return compiled.max_abs_difference(
        trees.row_errors(record.x_train, predictions), error_model.row_errors(record.x_train, predictions)
    )


def _log_compiled(model: Pipeline) -> str | None:
    """Log the compiled trees next to the pipeline (in the active run); the runtime label, or None."""
    try:
        tree_model = compiled.compile_pipeline(model)
    except compiled.CannotCompile as error:
        mlflow.set_tag(compiled.TAG_COMPILED + ".skipped", str(error))
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = compiled.save(tree_model, Path(folder) / Path(compiled.COMPILED_ARTIFACT).name)
        mlflow.log_artifact(str(path), artifact_path=str(Path(compiled.COMPILED_ARTIFACT).parent))
    return compiled.runtime_label()
