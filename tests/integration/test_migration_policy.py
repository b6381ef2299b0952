"""The migration policy (docs/migrations.md) on a real Postgres: expand steps keep what the previous
schema had, contract steps say so, and a migration waiting on a lock gives up and applies nothing.

Each migration is applied on top of the previous one, and the schema is read from the catalogue
before and after: a column dropped, renamed or retyped, or a new NOT NULL column without a default in
a table that existed (the previous release's INSERTs would fail), is refused unless the migration's
header marks it ``-- contract: ...``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from services.common.database import MigrationFailed, connect, migrate, migrations
from tests.conftest import database_on

COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
"""


@dataclass(frozen=True)
class Column:
    type: str
    not_null: bool
    has_default: bool


Schema = dict[tuple[str, str], Column]


@pytest.fixture
def empty_database(postgres_server: str) -> Iterator[str]:
    name = f"p_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_on(postgres_server, name)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema(url: str) -> Schema:
    with connect(url) as conn:
        rows = conn.execute(COLUMNS).fetchall()
    return {
        (table, column): Column(kind, not_null, default) for table, column, kind, not_null, default in rows
    }


def breaking_changes(before: Schema, after: Schema) -> list[str]:
    """What a release reading ``before`` would trip over in ``after``."""
    tables = {table for table, _ in before}
    changes = []
    for (table, column), old in before.items():
        new = after.get((table, column))
        if new is None:
            changes.append(f"{table}.{column} is gone (dropped or renamed)")
        elif new.type != old.type:
            changes.append(f"{table}.{column} changed type {old.type} -> {new.type}")
        elif new.not_null and not old.not_null and not new.has_default:
            changes.append(f"{table}.{column} became NOT NULL")
    for (table, column), new in after.items():
        if table in tables and (table, column) not in before and new.not_null and not new.has_default:
            changes.append(f"{table}.{column} is new, NOT NULL and without a default")
    return changes


def test_expand_steps_keep_what_the_previous_schema_had(empty_database: str) -> None:
    before: Schema = {}
    for migration in migrations():
        migrate(empty_database, until=migration.version)
        after = schema(empty_database)
        changes = breaking_changes(before, after)
        if migration.contract is None:
            assert not changes, (
                f"{migration.version} breaks the previous release: {changes}; make it an expand step, or "
                "mark it `-- contract: ...` and ship it a release after the code stopped using it"
            )
        before = after


def test_the_check_catches_a_contract_step_and_its_mark_is_what_lets_it_through(empty_database: str) -> None:
    """0004 rebuilt feedback with a NOT NULL partition key: caught, and marked as a contract step."""
    versions = [one.version for one in migrations()]
    step = versions.index("0004_partitioned_log")
    migrate(empty_database, until=versions[step - 1])
    before = schema(empty_database)
    migrate(empty_database, until=versions[step])
    assert breaking_changes(before, schema(empty_database)) == [
        "feedback.predicted_at is new, NOT NULL and without a default"
    ]
    assert migrations()[step].contract is not None


def test_every_migration_runs_with_timeouts() -> None:
    for migration in migrations():
        assert set(migration.timeouts) == {"lock_timeout", "statement_timeout"}, migration.version


def test_a_migration_waiting_on_a_lock_gives_up_and_applies_nothing(empty_database: str) -> None:
    """A live reader holds predictions; 0004 must rename it: it waits 5 s, then the whole run rolls back."""
    migrate(empty_database, until="0003_alert_subject")
    holding, release = threading.Event(), threading.Event()

    def reader() -> None:
        with connect(empty_database) as conn, conn.transaction():
            conn.execute("LOCK TABLE predictions IN ACCESS SHARE MODE")
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(MigrationFailed) as failed:
            migrate(empty_database)
    finally:
        release.set()
        thread.join()
    message = str(failed.value)
    assert "migration 0004_partitioned_log waited longer than its lock_timeout" in message
    assert "nothing was applied" in message and "pg_stat_activity" in message
    with connect(empty_database) as conn:
        newest = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'predictions'").fetchone()
    assert newest == ("0003_alert_subject",)
    assert kind == ("r",)  # still the plain table: nothing of 0004 (or after it) stayed
    assert migrate(empty_database)[0] == "0004_partitioned_log"  # and the next run goes through
