"""Reading what a run judges from the registry: the champion, its reference profile and error model.

Also ``load_predictor``: a registered version's ``predict``, for the checks that score rows again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.common import compiled
from services.common.database import first_line
from services.common.error_model import CompiledErrorModel, ErrorEstimator, load_error_model
from services.common.estimate_band import EstimateBand, band_of
from services.common.model_signing import ModelRefused, TrustedKeys
from services.common.profile import ReferenceProfile
from services.common.registry import (
    ERROR_MODEL_ARTIFACT,
    ERROR_MODEL_COMPILED_ARTIFACT,
    METRIC_HOLDOUT_MAE,
    PROFILE_ARTIFACT,
    RegistryError,
    alias_version,
    current_aliases,
    get_version,
    version_figures,
)
from services.common.signed_artifacts import MODEL_FOLDER, verified_files
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
    estimate_band: EstimateBand | None = None  # the estimate's band (tag estimate.band)
    estimate_band_note: str | None = None  # why there is none: the old rule judges the estimate


class ChampionUnreadable(MonitorFailed):
    """The registry or the champion's reference profile cannot be read; ``version`` when it is known."""

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version
        self.reported = False  # True once the run's error row says so


class ArtifactRefused(ChampionUnreadable):
    """A version's signature or files do not check (services/common/model_signing.py): nothing of it is
    loaded, and the run stops."""


def load_predictor(client: MlflowClient, keys: TrustedKeys, version: int) -> Predictor:
    """A registered version's ``predict`` with one OpenMP thread (the rollback check and the estimates
    score the window's rows), loaded from its verified files. Raises ArtifactRefused, MonitorFailed."""
    import mlflow.sklearn
    from threadpoolctl import threadpool_limits

    try:
        registered = get_version(client, version)
        with verified_files(client, registered, keys, [MODEL_FOLDER]) as folder:
            model = mlflow.sklearn.load_model(str(folder / MODEL_FOLDER))
    except ModelRefused as error:
        raise ArtifactRefused(str(error), version) from error
    except (MlflowException, OSError, RegistryError) as error:
        raise MonitorFailed(f"cannot load model version {version}: {first_line(error)}") from error

    def predict(x: np.ndarray) -> np.ndarray:
        with threadpool_limits(1):
            return np.asarray(model.predict(x), dtype=np.float64)

    return predict


def read_champion(client: MlflowClient, keys: TrustedKeys) -> Champion | None:
    """The champion and its reference profile; None when there is none yet. Raises ChampionUnreadable
    (ArtifactRefused when its signature or files do not check against ``keys``)."""
    try:
        champion_mv = alias_version(client, Role.CHAMPION)
    except RegistryError as error:
        raise ChampionUnreadable(str(error)) from error
    if champion_mv is None:
        return None
    version = int(champion_mv.version)
    try:
        figures = version_figures(client, champion_mv)
        # Every signed file of the champion, not only the profile this run opens: an altered champion
        # stops the run at once (the server refuses it too), whatever the run would have loaded.
        with verified_files(client, champion_mv, keys) as folder:
            profile = ReferenceProfile.load(folder / PROFILE_ARTIFACT)
        previous_alias = current_aliases(client)[Role.PREVIOUS]
    except ModelRefused as error:
        raise ArtifactRefused(f"{error}; the monitor judges nothing it cannot trust", version) from error
    except (MlflowException, OSError, ValueError, RegistryError) as error:
        message = (
            f"cannot read the reference profile ({PROFILE_ARTIFACT}) of champion v{version}: "
            f"{first_line(error)}; retrain with `housing train` or check MLFLOW_TRACKING_URI"
        )
        raise ChampionUnreadable(message, version) from error
    error_model, note = load_version_error_model(client, keys, champion_mv)
    band, band_note = band_of(champion_mv.tags or {})
    return Champion(
        version,
        figures.metrics.get(METRIC_HOLDOUT_MAE),
        profile,
        previous_alias,
        error_model,
        note,
        figures.run_id,
        band,
        band_note,
    )


def load_version_error_model(
    client: MlflowClient, keys: TrustedKeys, registered: ModelVersion, role: str = Role.CHAMPION
) -> tuple[ErrorEstimator | None, str | None]:
    """A version's error model from its verified files, compiled when it has that form, or None and why
    (a note too when the pickled regressor is used). Raises ArtifactRefused when the version's signature
    or files do not check; otherwise never raises (without it, the run estimates nothing)."""
    version = int(registered.version)
    try:
        manifest = keys.verified_manifest(version, dict(registered.tags or {}))
        if ERROR_MODEL_COMPILED_ARTIFACT in manifest:
            with verified_files(client, registered, keys, [ERROR_MODEL_COMPILED_ARTIFACT]) as folder:
                return CompiledErrorModel(compiled.load(folder / ERROR_MODEL_COMPILED_ARTIFACT)), None
        if ERROR_MODEL_ARTIFACT not in manifest:
            return None, f"{role} v{version} has no error model (registered before it existed): no estimate"
        note = (
            f"{role} v{version} has no compiled error model (registered before it existed):"
            " estimating with its scikit-learn regressor"
        )
        with verified_files(client, registered, keys, [ERROR_MODEL_ARTIFACT]) as folder:
            return load_error_model(folder / ERROR_MODEL_ARTIFACT), note
    except ModelRefused as error:
        raise ArtifactRefused(str(error), version) from error
    except Exception as error:  # a broken artifact costs the estimate, not the run
        return None, f"cannot read the error model of {role} v{version}: {first_line(error)}; no estimate"
