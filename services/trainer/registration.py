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
from services.common.features import EXAMPLE, FEATURE_NAMES, TARGET
from services.common.finite import NON_FINITE, finite_document
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
from services.common.vocabulary import Role
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


def run_figures(record: TrainingRecord) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics to log, tags for the undefined ones): a non-finite metric becomes a tag too."""
    checked = finite_document(record.metrics, where="the MLflow run metrics")
    nulled: dict[str, str] = checked.pop(NON_FINITE, {})
    metrics = {name: value for name, value in checked.items() if value is not None}
    reasons = {**record.undefined, **nulled}
    return metrics, {f"{name}{UNDEFINED_TAG_SUFFIX}": why for name, why in reasons.items()}


def register_candidate(client: MlflowClient, experiment_id: str, record: TrainingRecord) -> tuple[int, str]:
    """Log the run and register the model as a new version aliased ``challenger``; (version, run id)."""
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
        with warnings.catch_warnings():
            # MLflow checks the input example through pyfunc, which passes a DataFrame to a model
            # fitted on numpy (on purpose, see model.py): scikit-learn's name warning is expected.
            warnings.filterwarnings("ignore", message="X has feature names")
            warnings.filterwarnings("ignore", message="Saving scikit-learn models in the pickle")
            info = mlflow.sklearn.log_model(
                record.model,
                name=MODEL_ARTIFACT,
                signature=signature(),
                input_example=pd.DataFrame([EXAMPLE], columns=list(FEATURE_NAMES)),
                registered_model_name=MODEL_NAME,
                serialization_format=SERIALIZATION,
                # Stated, not inferred: inference runs the model in a subprocess (seconds per run).
                pip_requirements=_requirements(),
            )
        version = int(info.registered_model_version or 0)
        runtime = _log_compiled(record.model)
    if runtime is not None:
        client.set_model_version_tag(MODEL_NAME, str(version), compiled.TAG_COMPILED, runtime)
    client.set_registered_model_alias(MODEL_NAME, Role.CHALLENGER, str(version))
    return version, run.info.run_id


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
