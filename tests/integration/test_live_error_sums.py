"""The live MAE from kept per-bucket sums equals the direct computation on Postgres: with late feedback
for kept buckets, feedback that arrived before its prediction was logged (a spool replay), feedback
committed while a run reads; and no run counts a label twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.inference.metrics import Metrics
from services.inference.rows import PredictionRow
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter
from services.monitor.histograms import floor_bucket
from services.monitor.live_error import KeptLiveError, kept_live_error, live_error

RETENTION = timedelta(hours=48)


def _feedback(
    conn: psycopg.Connection, ids: list[uuid.UUID], made: list[datetime], actual: np.ndarray
) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO feedback (prediction_id, predicted_at, actual) VALUES (%s, %s, %s)",
            list(zip(ids, made, actual.tolist(), strict=True)),
        )


def _check(conn: psycopg.Connection, start: datetime, now: datetime) -> KeptLiveError:
    kept = kept_live_error(conn, 1, start, now, now=now, retention=RETENTION)
    direct = live_error(conn, 1, start, now)
    assert kept.error.rows == direct.rows
    assert kept.error.mae == pytest.approx(direct.mae, rel=1e-12)
    return kept


def test_kept_sums_equal_the_direct_live_error(database_url: str, dataset: Dataset, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    rng = np.random.default_rng(0)
    x, y = dataset.x_holdout[:3000], dataset.y_holdout[:3000]
    guesses = y + rng.normal(0, 0.4, len(y))
    spacing = timedelta(seconds=2)
    made = [start + spacing * i for i in range(len(x))]
    with psycopg.connect(database_url) as conn, psycopg.connect(database_url) as other:
        ids = insert_predictions(conn, x, start=start, spacing=spacing, predictions=guesses)
        _feedback(conn, ids[:1500], made[:1500], y[:1500])
        conn.commit()
        first = _check(conn, start, now)
        assert first.error.rows == 1500

        # Late feedback for kept buckets: added, once.
        _feedback(conn, ids[1500:2000], made[1500:2000], y[1500:2000])
        conn.commit()
        second = _check(conn, start, now)
        assert second.details["added_rows"] == 500 and second.error.rows == 2000
        third = _check(conn, start, now)
        assert third.details["added_rows"] == 0 and third.error.rows == 2000

        # Feedback committed while a run reads: the run after adds it, once.
        _feedback(other, ids[2000:2100], made[2000:2100], y[2000:2100])
        during = _check(conn, start, now)
        assert during.error.rows == 2000
        other.commit()
        after = _check(conn, start, now)
        assert after.details["added_rows"] == 100 and after.error.rows == 2100
        assert _check(conn, start, now).details["added_rows"] == 0

        # Feedback for predictions a stopped server spooled: the truth first, the rows replayed later.
        late_at = floor_bucket(start + timedelta(minutes=40)) + timedelta(minutes=5)
        late_x = dataset.x_holdout[3000:3200]
        late_ids = [uuid.uuid4() for _ in range(len(late_x))]
        late_made = [late_at + timedelta(seconds=i) for i in range(len(late_x))]
        _feedback(conn, late_ids, late_made, dataset.y_holdout[3000:3200])
        conn.commit()
        assert _check(conn, start, now).error.rows == 2100  # the truth joins nothing yet
        rows: list[PredictionRow] = [
            (late_ids[i], late_made[i], 1, "champion", None, *late_x[i].tolist(), 1.5, 1.0)  # type: ignore[misc]
            for i in range(len(late_x))
        ]
        spool = Spool(tmp_path / "spool", max_bytes=50_000_000)
        spool.open()
        assert spool.append(rows)
        spool.close()
        writer = PredictionWriter(
            database_url, Spool(tmp_path / "spool", max_bytes=50_000_000), Metrics(), flush_seconds=0.01
        )
        writer.start()
        try:
            assert writer.wait_idle(30)
        finally:
            writer.stop()
        replayed = _check(conn, start, now)
        assert replayed.error.rows == 2300 and replayed.details["recounted_buckets"] >= 1
        again = _check(conn, start, now)
        assert again.error.rows == 2300 and again.details["recounted_buckets"] == 0
        assert again.details["added_rows"] == 0
