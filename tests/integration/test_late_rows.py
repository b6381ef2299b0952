"""Late rows count: rows a spool replays into a 10-minute bucket the monitor already kept reach the
histograms on the next run, which reads only those buckets again; a late batch still uncommitted
while a run reads is counted by the run after; fresh batches record nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.profile import ReferenceProfile, build_profile
from services.inference.metrics import Metrics
from services.inference.rows import PredictionRow
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter
from services.monitor.histograms import BUCKET, count_range, floor_bucket, window_counts

RETENTION = timedelta(hours=48)


def _rows(x: npt.NDArray[np.float64], start: datetime, spacing: timedelta) -> list[PredictionRow]:
    return [
        (uuid.uuid4(), start + spacing * i, 1, "champion", None, *values, 2.0, 1.0)  # type: ignore[misc]
        for i, values in enumerate(x.tolist())
    ]


def _write(database_url: str, folder: Path, rows: list[PredictionRow], *, spooled: bool) -> None:
    """Through the server's writer: from a spool a stopped server left (a replay), or as served."""
    if spooled:
        left = Spool(folder, max_bytes=50_000_000)
        left.open()
        assert left.append(rows)
        left.close()
    writer = PredictionWriter(
        database_url, Spool(folder, max_bytes=50_000_000), Metrics(), flush_seconds=0.01
    )
    writer.start()
    try:
        if not spooled:
            writer.put(rows)
        assert writer.wait_idle(30)
    finally:
        writer.stop()


def _run(conn: psycopg.Connection, profile: ReferenceProfile, start: datetime, now: datetime):  # type: ignore[no-untyped-def]
    counts = window_counts(conn, profile, start, now, now=now, retention=RETENTION)
    conn.commit()
    return counts


def _late_records(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM prediction_late_rows").fetchone()
    assert row is not None
    return int(row[0])


def test_rows_replayed_into_a_kept_bucket_count_on_the_next_run(
    database_url: str, dataset: Dataset, tmp_path: Path
) -> None:
    profile = build_profile(dataset.x_train)
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    old, late = dataset.x_holdout[:3000], dataset.x_holdout[3000:3400]
    late_start = floor_bucket(start + timedelta(minutes=40)) + timedelta(minutes=5)  # inside kept buckets
    with psycopg.connect(database_url) as conn:
        insert_predictions(conn, old, start=start, spacing=timedelta(seconds=2))  # ~100 minutes
        conn.commit()
        first = _run(conn, profile, start, now)
        assert first.rows == len(old) and first.details["recounted_buckets"] == 0

        # A server spooled these during an outage and stopped; the next server replays them.
        _write(database_url, tmp_path / "spool", _rows(late, late_start, timedelta(seconds=1)), spooled=True)
        assert _late_records(conn) == 1
        later = now + timedelta(minutes=1)
        second = _run(conn, profile, start, later)
        direct = count_range(conn, profile, start, later)

        late_buckets = {floor_bucket(late_start + timedelta(seconds=i)) for i in range(len(late))}
        assert second.rows == len(old) + len(late)
        assert second.counts == direct
        assert second.details["recounted_buckets"] == len(late_buckets) == 2
        # It read the two late buckets again (their old rows and the late ones), not the window.
        old_in_late = sum(
            1 for i in range(len(old)) if floor_bucket(start + timedelta(seconds=2 * i)) in late_buckets
        )
        assert second.details["recounted_rows"] == old_in_late + len(late)
        assert second.scanned <= old_in_late + len(late) + 2 * int(BUCKET.total_seconds() / 2)

        third = _run(conn, profile, start, later)
        assert third.details["recounted_buckets"] == 0, "a late batch is recounted once"
        assert third.counts == direct


def test_a_late_batch_committing_during_a_run_counts_on_the_run_after(
    database_url: str, dataset: Dataset
) -> None:
    profile = build_profile(dataset.x_train)
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    with psycopg.connect(database_url) as conn, psycopg.connect(database_url) as writer:
        insert_predictions(conn, dataset.x_holdout[:3000], start=start, spacing=timedelta(seconds=2))
        conn.commit()
        _run(conn, profile, start, now)
        # A writer's late batch: rows and their record in one transaction, not yet committed ...
        late_start = start + timedelta(minutes=30)
        insert_predictions(
            writer, dataset.x_holdout[3000:3100], start=late_start, spacing=timedelta(seconds=1)
        )
        writer.execute(
            "INSERT INTO prediction_late_rows (first_at, last_at, rows) VALUES (%s, %s, 100)",
            (late_start, late_start + timedelta(seconds=99)),
        )
        # ... while a run reads: it cannot see them,
        during = _run(conn, profile, start, now)
        assert during.rows == 3000
        writer.commit()
        # ... and the run after counts them, though the record predates that run's watermark.
        after = _run(conn, profile, start, now)
        assert after.rows == 3100
        assert after.counts == count_range(conn, profile, start, now)


def test_fresh_batches_record_nothing_late(database_url: str, dataset: Dataset, tmp_path: Path) -> None:
    rows = _rows(dataset.x_holdout[:200], datetime.now(UTC), timedelta(milliseconds=1))
    _write(database_url, tmp_path / "spool", rows, spooled=False)
    with psycopg.connect(database_url) as conn:
        assert _late_records(conn) == 0
        logged = conn.execute("SELECT count(*) FROM predictions").fetchone()
        assert logged is not None and logged[0] == 200
