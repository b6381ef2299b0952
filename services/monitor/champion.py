"""Reading what a run judges from the registry: the champion, its reference profile and error model.

Also ``load_predictor``: a registered version's ``predict``, for the checks that score rows again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.common import compiled
from services.common.database import first_line
from services.common.error_model import CompiledErrorModel, ErrorEstimator, load_error_model
from services.common.profile import ReferenceProfile
from services.common.registry import (
    ERROR_MODEL_ARTIFACT,
    ERROR_MODEL_COMPILED_ARTIFACT,
    METRIC_HOLDOUT_MAE,
    PROFILE_ARTIFACT,
    RegistryError,
    alias_version,
    current_aliases,
    model_uri,
    version_figures,
)
from services.common.vocabulary import Role
from services.monitor.rollback_check import Predictor
from services.monitor.summary import MonitorFailed


@dataclass(frozen=True)
class Champion:
    """The champion a run judges: its version, training figures, reference profile and the ``previous``."""

    version: int
    reference_mae: float | None
    profile: ReferenceProfile
    previous_alias: int | None
    error_model: ErrorEstimator | None  # None: registered without one (no estimate), or unreadable
    error_model_note: str | None = None  # why there is no estimate, or that it comes from scikit-learn
    run_id: str = ""  # the MLflow run that trained it (its tags say which labelled rows it saw)


class ChampionUnreadable(MonitorFailed):
    """The registry or the champion's reference profile cannot be read; ``version`` when it is known."""

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


def load_predictor(version: int) -> Predictor:
    """A registered version's ``predict`` with one OpenMP thread (the rollback check and the estimates
    score the window's rows)."""
    import mlflow.sklearn
    from threadpoolctl import threadpool_limits

    try:
        model = mlflow.sklearn.load_model(model_uri(version))
    except (MlflowException, OSError) as error:
        raise MonitorFailed(f"cannot load model version {version}: {error}") from error

    def predict(x: np.ndarray) -> np.ndarray:
        with threadpool_limits(1):
            return np.asarray(model.predict(x), dtype=np.float64)

    return predict


def read_champion(client: MlflowClient) -> Champion | None:
    """The champion and its reference profile; None when there is none yet. Raises ChampionUnreadable."""
    try:
        champion_mv = alias_version(client, Role.CHAMPION)
    except RegistryError as error:
        raise ChampionUnreadable(str(error)) from error
    if champion_mv is None:
        return None
    version = int(champion_mv.version)
    try:
        figures = version_figures(client, champion_mv)
        profile = _load_reference(client, figures.run_id)
        previous_alias = current_aliases(client)[Role.PREVIOUS]
    except (MlflowException, OSError, ValueError, RegistryError) as error:
        message = (
            f"cannot read the reference profile ({PROFILE_ARTIFACT}) of champion v{version}: "
            f"{first_line(error)}; retrain with `housing train` or check MLFLOW_TRACKING_URI"
        )
        raise ChampionUnreadable(message, version) from error
    error_model, note = load_version_error_model(client, figures.run_id, version)
    return Champion(
        version,
        figures.metrics.get(METRIC_HOLDOUT_MAE),
        profile,
        previous_alias,
        error_model,
        note,
        figures.run_id,
    )


def _load_reference(client: MlflowClient, run_id: str) -> ReferenceProfile:
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, PROFILE_ARTIFACT, folder)
        return ReferenceProfile.load(Path(path))


def load_version_error_model(
    client: MlflowClient, run_id: str, version: int, role: str = Role.CHAMPION
) -> tuple[ErrorEstimator | None, str | None]:
    """A version's error model, compiled when it has that form, or None and why (a note too when the
    pickled regressor is used); never raises (without it, the run estimates nothing)."""
    folder = str(Path(ERROR_MODEL_ARTIFACT).parent)
    try:
        stored = {item.path for item in client.list_artifacts(run_id, folder)}
        with tempfile.TemporaryDirectory() as temporary:
            if ERROR_MODEL_COMPILED_ARTIFACT in stored:
                path = client.download_artifacts(run_id, ERROR_MODEL_COMPILED_ARTIFACT, temporary)
                return CompiledErrorModel(compiled.load(Path(path))), None
            if ERROR_MODEL_ARTIFACT not in stored:
                return (
                    None,
                    f"{role} v{version} has no error model (registered before it existed): no estimate",
                )
            path = client.download_artifacts(run_id, ERROR_MODEL_ARTIFACT, temporary)
            note = (
                f"{role} v{version} has no compiled error model (registered before it existed):"
                " estimating with its scikit-learn regressor"
            )
            return load_error_model(Path(path)), note
    except Exception as error:  # a broken artifact costs the estimate, not the run
        return None, f"cannot read the error model of {role} v{version}: {first_line(error)}; no estimate"
