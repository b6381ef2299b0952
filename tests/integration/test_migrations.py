"""Migrations against a real embedded Postgres: from empty, re-run, and from two processes at once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

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


def _old_layout_rows(conn: psycopg.Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    predictions = conn.execute("SELECT * FROM predictions ORDER BY id").fetchall()
    feedback = conn.execute(
        "SELECT prediction_id, actual, received_at FROM feedback ORDER BY prediction_id"
    ).fetchall()
    return predictions, feedback


def test_the_partitioning_migration_moves_every_prediction_and_feedback_row(empty_database: str) -> None:
    versions = [version for version, _ in migration_files()]
    last_unpartitioned = versions[versions.index("0004_partitioned_log") - 1]
    migrate(empty_database, until=last_unpartitioned)
    now = datetime.now(UTC)
    with connect(empty_database, autocommit=True) as conn:
        # 3,000 predictions over 40 days (both sides of several midnights), uuid4 ids as the old server made
        conn.execute(
            "INSERT INTO predictions (id, created_at, model_version, role, shadow_of, med_inc, house_age,"
            " ave_rooms, ave_bedrms, population, ave_occup, latitude, longitude, prediction, latency_ms)"
            " SELECT gen_random_uuid(), %s - g * interval '23 minutes', 1 + g %% 3,"
            " CASE WHEN g %% 5 = 0 THEN 'challenger' ELSE 'champion' END, NULL,"
            " g, 20, 5, 1, 1000, 3, 34, -118, g / 1000.0, 1.5 FROM generate_series(1, 3000) AS g",
            (now,),
        )
        conn.execute(
            "UPDATE predictions SET shadow_of = gen_random_uuid() WHERE role = 'challenger' AND med_inc < 100"
        )
        # truth for every third prediction, and one whose prediction never reached the log
        conn.execute(
            "INSERT INTO feedback (prediction_id, actual, received_at)"
            " SELECT id, med_inc / 7.0, created_at + interval '3 hours' FROM predictions"
            " WHERE med_inc::int % 3 = 0"
        )
        conn.execute("INSERT INTO feedback (prediction_id, actual) VALUES (gen_random_uuid(), 1.25)")
        before_predictions, before_feedback = _old_layout_rows(conn)

    assert migrate(empty_database) == versions[versions.index("0004_partitioned_log") :]

    with connect(empty_database, autocommit=True) as conn:
        after_predictions, after_feedback = _old_layout_rows(conn)
        assert len(before_predictions) == 3000 and len(before_feedback) == 1001
        assert after_predictions == before_predictions
        assert after_feedback == before_feedback
        # every prediction sits in its day's partition, none in the DEFAULT one
        in_default = conn.execute("SELECT count(*) FROM predictions_default").fetchone()
        assert in_default == (0,)
        days = conn.execute("SELECT count(DISTINCT tableoid) FROM predictions").fetchone()
        assert days is not None and days[0] >= 40
        joined = conn.execute(
            "SELECT count(*) FROM feedback f JOIN predictions p"
            " ON p.id = f.prediction_id AND p.created_at = f.predicted_at"
        ).fetchone()
        assert joined == (1000,)
        kinds = conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('predictions', 'feedback')"
        ).fetchall()
        assert sorted(kinds) == [("feedback", "p"), ("predictions", "p")]
