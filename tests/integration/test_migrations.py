"""Migrations against a real embedded Postgres: from empty, re-run, and from two processes at once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from services.common.database import DatabaseUnavailable, connect, migrate, migration_files
from tests.conftest import database_on

TABLES = {"predictions", "feedback", "drift_reports", "model_events", "schema_migrations"}


@pytest.fixture
def empty_database(postgres_server: str) -> str:
    name = f"e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_on(postgres_server, name)


def tables(url: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def test_from_empty_then_rerun(empty_database: str) -> None:
    versions = [version for version, _ in migration_files()]
    assert migrate(empty_database) == versions
    assert tables(empty_database) >= TABLES
    assert migrate(empty_database) == []


def test_two_processes_at_once_apply_each_migration_once(empty_database: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate(empty_database), range(4)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == sorted(version for version, _ in migration_files())
    with connect(empty_database) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == (len(migration_files()),)


def test_unreachable_database_names_the_fix() -> None:
    with pytest.raises(DatabaseUnavailable, match="check DATABASE_URL"):
        migrate("postgresql://nobody@127.0.0.1:1/none")
