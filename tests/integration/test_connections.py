"""Every Postgres connection fails on a dead network path instead of hanging, and a request's
feedback write gives up on a stuck row instead of waiting for it (a real embedded Postgres)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from services.common.database import LIVENESS, connect, create_pool
from services.common.vocabulary import Role
from services.inference.feedback import record_feedback


def _liveness(conn: psycopg.Connection) -> dict[str, str]:
    parameters = conn.info.get_parameters()
    return {name: parameters.get(name, "") for name in LIVENESS}


def test_single_and_pooled_connections_carry_keepalives_and_timeouts(database_url: str) -> None:
    expected = {name: str(value) for name, value in LIVENESS.items()}
    with connect(database_url) as conn:
        assert _liveness(conn) == expected
    pool = create_pool(database_url, min_size=1, max_size=1, name="test")
    try:
        with pool.connection() as conn:
            assert _liveness(conn) == expected
    finally:
        pool.close()


def test_a_feedback_write_stuck_behind_another_transaction_gives_up(database_url: str) -> None:
    prediction, made = uuid.uuid4(), datetime.now(UTC)
    with connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO predictions (id, created_at, model_version, role, prediction, latency_ms,"
            " med_inc, house_age, ave_rooms, ave_bedrms, population, ave_occup, latitude, longitude)"
            " VALUES (%s, %s, 1, %s, 2.0, 1.0, 3, 20, 5, 1, 1000, 3, 34, -118)",
            (prediction, made, Role.CHAMPION),
        )
    with connect(database_url) as holder, connect(database_url) as request:
        holder.execute(
            "INSERT INTO feedback (prediction_id, predicted_at, actual) VALUES (%s, %s, 2.5)",
            (prediction, made),
        )
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            record_feedback(request, prediction, 250_000.0, recent={})
        assert 4 < time.monotonic() - started < 15
        holder.rollback()
