"""The model holder: which champion (and challenger) is served, kept up to date from the registry.

A background thread asks the registry every ``poll_seconds`` where the aliases point. A new version
is loaded and warmed up off the request path, then swapped in with one reference assignment: a
request reads :attr:`ModelHolder.champion` once and scores its whole batch with that model, so no
request sees two models. When the registry is unreachable the last good model stays in service and
the failure is logged and counted.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from threadpoolctl import threadpool_limits

from services.common import compiled
from services.common.database import first_line
from services.common.features import EXAMPLE, to_matrix
from services.common.model_signing import SIGNING_TAGS, ModelRefused, TrustedKeys
from services.common.registry import (
    RegistryError,
    alias_version,
    version_figures,
)
from services.common.signed_artifacts import MODEL_FOLDER, verified_files
from services.common.vocabulary import Role
from services.inference.metrics import Metrics

log = logging.getLogger(__name__)


class Regressor(Protocol):
    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version with what ``GET /model`` tells about it."""

    version: int
    run_id: str
    model: Regressor
    loaded_at: datetime
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    runtime: str = compiled.RUNTIME_PIPELINE

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "runtime": self.runtime,
            "loaded_at": self.loaded_at.isoformat(),
            "metrics": self.metrics,
            "tags": self.tags,
        }


def load_from_registry(client: MlflowClient, version: ModelVersion, keys: TrustedKeys) -> ServedModel:
    """Download a version's signed files, check them against ``keys``, load the scikit-learn model from
    the local copy (and its compiled trees when it has them) and warm it up with one prediction.

    Raises:
        ModelRefused: the version is unsigned, signed by an unknown key, or a file was altered.
        RegistryError: the registry or the artifact store failed, or the model does not predict.
    """
    import mlflow.sklearn

    wanted = [MODEL_FOLDER]
    if compiled.TAG_COMPILED in (version.tags or {}):
        wanted.append(compiled.COMPILED_ARTIFACT)
    try:
        figures = version_figures(client, version)
        with verified_files(client, version, keys, wanted) as folder:
            model: Regressor = mlflow.sklearn.load_model(str(folder / MODEL_FOLDER))
            with threadpool_limits(1):
                warm = model.predict(to_matrix([EXAMPLE]))
            if warm.shape != (1,) or not np.isfinite(warm).all():
                raise RegistryError(
                    f"model version {version.version} does not predict one finite price per row"
                )
            served, runtime = _compiled_or(model, folder, version)
    except RegistryError:  # ModelRefused too
        raise
    except Exception as error:  # MLflow raises many kinds (MlflowException, OSError, pickle errors)
        raise RegistryError(f"cannot load model version {version.version}: {first_line(error)}") from error
    return ServedModel(
        version=figures.version,
        run_id=figures.run_id,
        model=served,
        loaded_at=datetime.now(UTC),
        metrics=figures.metrics,
        tags=figures.tags,
        runtime=runtime,
    )


def _compiled_or(pipeline: Regressor, folder: Path, version: ModelVersion) -> tuple[Regressor, str]:
    """The version's compiled trees when it has them and they agree with the pipeline; else the pipeline.

    ``folder``: the version's verified files (the checkpoint among them when the version is tagged).
    """
    if compiled.TAG_COMPILED not in (version.tags or {}):
        return pipeline, compiled.RUNTIME_PIPELINE
    probe = to_matrix([EXAMPLE])
    try:
        tree_model = compiled.load(folder / compiled.COMPILED_ARTIFACT)
        difference = compiled.max_abs_difference(tree_model.predict(probe), pipeline.predict(probe))
    except Exception as error:  # the gate checked it; a broken artifact must still not stop serving
        log.error(
            "version %s: cannot load its compiled trees (%s); serving the pipeline", version.version, error
        )
        return pipeline, compiled.RUNTIME_PIPELINE
    if difference > compiled.PARITY_TOLERANCE:
        log.error(
            "version %s: compiled trees differ from the pipeline by %.3g; serving the pipeline",
            version.version,
            difference,
        )
        return pipeline, compiled.RUNTIME_PIPELINE
    return tree_model, compiled.RUNTIME_COMPILED


Loader = Callable[[MlflowClient, ModelVersion], ServedModel]


@dataclass(frozen=True)
class Refusal:
    """A version an alias points at that was refused (unsigned, unknown key, bad signature, altered)."""

    role: Role
    version: int
    reason: str
    at: datetime
    tags: tuple[tuple[str, str], ...]  # its signing tags when refused: tried again only once they change

    def describe(self) -> dict[str, Any]:
        return {"role": self.role, "version": self.version, "reason": self.reason, "at": self.at.isoformat()}


def _signing_tags(version: ModelVersion) -> tuple[tuple[str, str], ...]:
    tags = version.tags or {}
    return tuple((tag, tags.get(tag, "")) for tag in SIGNING_TAGS)


def _freeze_heap() -> None:
    """Move everything alive now (libraries, the model) out of the garbage collector's sight.

    The server's heap is millions of long-lived objects (MLflow, scikit-learn, pandas, the trees);
    every full collection walked all of them and stopped both the event loop and the predict thread:
    p99 at concurrency 16 fell from ~150 ms to ~31 ms with it. On a swap everything is thawed and
    collected once (the old model's cycles with it), then frozen again.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHolder:
    """The served champion, the shadow challenger, and the thread that keeps them current.

    Args:
        client: the registry.
        metrics: the app's metrics (model_info, model_loaded, swaps, registry errors).
        poll_seconds: how often to look at the aliases.
        shadow: also load ``@challenger`` for shadow scoring.
        keys: the public keys a version must be signed by (MODEL_VERIFY_KEYS).
        loader: turns a registry version into a :class:`ServedModel` (default: :func:`load_from_registry`
            with ``keys``).

    A refused version is never loaded: the model already served stays, the refusal is logged once,
    counted, shown by ``GET /model`` (:attr:`refused`) and by ``model_refused{role}``.
    """

    def __init__(
        self,
        client: MlflowClient,
        metrics: Metrics,
        *,
        poll_seconds: float = 10.0,
        shadow: bool = False,
        keys: TrustedKeys | None = None,
        loader: Loader | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._shadow = shadow
        trusted = keys if keys is not None else TrustedKeys()
        self._loader = loader or (lambda client, version: load_from_registry(client, version, trusted))
        self.refused: dict[Role, Refusal] = {}
        self.champion: ServedModel | None = None
        self.challenger: ServedModel | None = None
        self.last_error: str | None = None
        self.last_poll_at: datetime | None = None
        self.polled = threading.Event()  # set after the first poll, successful or not
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.model_loaded.set(0)
        metrics.model_refused.labels(Role.CHAMPION).set(0)

    def start(self) -> None:
        """Poll now and then every ``poll_seconds``, in a background thread."""
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._poll_seconds)

    def refresh(self) -> None:
        """Look at the aliases once; load and swap in what moved. Never raises."""
        try:
            self._refresh_champion()
            self._refresh_challenger()
            if self.last_error is not None:
                log.warning("the model registry answers again")
            self.last_error = None
        except Exception as error:  # keep the last good model whatever the registry does
            self._metrics.registry_errors.inc()
            message = first_line(error)
            if message != self.last_error:
                served = (
                    f"still serving version {self.champion.version}" if self.champion else "no model loaded"
                )
                log.error("model registry: %s (%s)", message, served)
            self.last_error = message
        finally:
            self.last_poll_at = datetime.now(UTC)
            self.polled.set()

    def _refresh_champion(self) -> None:
        target = alias_version(self._client, Role.CHAMPION)
        current = self.champion
        if target is None:
            if current is None:
                log.info("no @champion in the registry yet; the monitor trains v1 at its next run")
            return  # an alias deleted under us: keep serving what we have
        if current is not None and int(target.version) == current.version:
            self._accepted(Role.CHAMPION)
            return
        loaded = self._load(Role.CHAMPION, target)
        if loaded is None:
            return
        self.champion = loaded  # one reference assignment: the swap is atomic for readers
        if current is not None:
            self._metrics.model_swaps.inc()
            self._metrics.model_info.remove(str(current.version), current.run_id)
            log.warning("now serving model version %d (was %d)", loaded.version, current.version)
        else:
            log.warning("serving model version %d", loaded.version)
        self._metrics.model_info.labels(str(loaded.version), loaded.run_id).set(1)
        self._metrics.model_loaded.set(1)
        _freeze_heap()

    def _refresh_challenger(self) -> None:
        if not self._shadow:
            return
        target = alias_version(self._client, Role.CHALLENGER)
        if target is None:
            self.challenger = None
            self._accepted(Role.CHALLENGER)
            return
        if self.challenger is not None and int(target.version) == self.challenger.version:
            return
        loaded = self._load(Role.CHALLENGER, target)
        self.challenger = loaded  # a refused challenger is not shadow-scored
        if loaded is not None:
            log.warning("shadow-scoring with challenger version %d", loaded.version)

    def _load(self, role: Role, target: ModelVersion) -> ServedModel | None:
        """The loaded version, or None when it is refused (again: its signing tags have not changed)."""
        earlier = self.refused.get(role)
        if (
            earlier is not None
            and earlier.version == int(target.version)
            and earlier.tags == _signing_tags(target)
        ):
            return None
        try:
            loaded = self._loader(self._client, target)
        except ModelRefused as error:
            self.refused[role] = Refusal(
                role, error.version, error.reason, datetime.now(UTC), _signing_tags(target)
            )
            self._metrics.model_refused.labels(role).set(error.version)
            self._metrics.model_refusals.labels(role).inc()
            served = self.champion
            keeping = f"still serving version {served.version}" if served else "no model is served"
            log.error("%s (@%s); %s", error, role, keeping)
            return None
        self._accepted(role)
        return loaded

    def _accepted(self, role: Role) -> None:
        """The alias points at a loadable version again: the refusal is over."""
        if self.refused.pop(role, None) is not None:
            self._metrics.model_refused.labels(role).set(0)
