"""``housing db maintain`` on a log spanning 30 days: keeps the retention window, drops the rest whole,
makes the days ahead, trims the monitor's state, keeps model_events; idempotent; beside a live writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from services.common.database import connect
from services.common.features import EXAMPLE
from services.common.maintenance import Retention, maintain
from services.common.partitions import day_start, partition_name, partitions, utc_day
from services.inference.metrics import Metrics
from services.inference.rows import PredictionRow
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter

RETENTION = Retention(
    prediction_days=7, days_ahead=2, drift_report_days=10, histogram_days=3, alert_state_days=5
)


def _fill_30_days(conn: psycopg.Connection, now: datetime) -> None:
    """A prediction every 10 minutes for 30 days back, truth for every other one, and monitor state."""
    maintain(conn, Retention(30, 2, 365, 365, 365), now=now)  # the 30 days have partitions
    conn.execute(
        "INSERT INTO predictions (id, created_at, model_version, role, med_inc, house_age, ave_rooms,"
        " ave_bedrms, population, ave_occup, latitude, longitude, prediction, latency_ms)"
        " SELECT gen_random_uuid(), %s - g * interval '10 minutes', 1, 'champion',"
        " 3, 20, 5, 1, 1000, 3, 34, -118, 2.0, 1.0 FROM generate_series(1, 30 * 144 - 1) AS g",
        (now,),
    )
    conn.execute(
        "INSERT INTO feedback (prediction_id, predicted_at, actual)"
        " SELECT id, created_at, 2.5 FROM predictions"
        " WHERE (extract(epoch FROM created_at)::bigint / 600) % 2 = 0"
    )
    for days in (1, 20):
        at = now - timedelta(days=days)
        conn.execute("INSERT INTO drift_reports (created_at, status) VALUES (%s, 'ok')", (at,))
        conn.execute(
            "INSERT INTO model_events (created_at, event, model_version, actor)"
            " VALUES (%s, 'promoted', 1, 't')",
            (at,),
        )
        conn.execute(
            "INSERT INTO monitor_histograms (profile_key, bucket_start, feature, bin, rows)"
            " VALUES ('k', %s, 'MedInc', 1, 5)",
            (day_start(utc_day(at)),),
        )
        conn.execute(
            "INSERT INTO monitor_alert_state (kind, active, last_seen_at) VALUES (%s, false, %s)",
            (f"kind{days}", at),
        )
    conn.execute(
        "INSERT INTO monitor_histogram_coverage (profile_key, filled_from, filled_until)"
        " VALUES ('k', %s, %s)",
        (day_start(utc_day(now - timedelta(days=20))), day_start(utc_day(now))),
    )


def _count(conn: psycopg.Connection, query: str, *params: object) -> int:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return int(row[0])


def test_maintain_keeps_the_window_drops_whole_days_and_is_idempotent(database_url: str) -> None:
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=7)
    with connect(database_url, autocommit=True) as conn:
        _fill_30_days(conn, now)
        kept = _count(conn, "SELECT count(*) FROM predictions WHERE created_at >= %s", cutoff)
        kept_truth = _count(conn, "SELECT count(*) FROM feedback WHERE predicted_at >= %s", cutoff)
        assert kept > 1000 and kept_truth > 500
        started = time.monotonic()
        report = maintain(conn, RETENTION, now=now)
        took = time.monotonic() - started

        assert took < 10
        assert report.skipped == []
        # every row of the last 7 days is still there; nothing older than the first kept day
        assert _count(conn, "SELECT count(*) FROM predictions WHERE created_at >= %s", cutoff) == kept
        assert _count(conn, "SELECT count(*) FROM feedback WHERE predicted_at >= %s", cutoff) == kept_truth
        oldest = conn.execute("SELECT min(created_at) FROM predictions").fetchone()
        assert oldest is not None and oldest[0] >= day_start(utc_day(cutoff))
        oldest_truth = conn.execute("SELECT min(predicted_at) FROM feedback").fetchone()
        assert oldest_truth is not None and oldest_truth[0] >= day_start(utc_day(cutoff))
        # whole days: 22 or 23 dropped per table, and the days from the cutoff to two ahead exist
        days = [utc_day(cutoff) + timedelta(days=i) for i in range((utc_day(now) - utc_day(cutoff)).days + 3)]
        for table in ("predictions", "feedback"):
            names = {p.name for p in partitions(conn, table) if not p.is_default}
            assert names == {partition_name(table, day) for day in days}, table
        assert len(report.dropped) >= 2 * 22
        assert report.created == []  # the fill's run made them all already
        # the monitor's state past its own settings is gone; the audit trail is kept
        assert _count(conn, "SELECT count(*) FROM drift_reports") == 1
        assert _count(conn, "SELECT count(*) FROM monitor_histograms") == 1
        assert _count(conn, "SELECT count(*) FROM monitor_alert_state") == 1
        coverage = conn.execute("SELECT filled_from FROM monitor_histogram_coverage").fetchone()
        assert coverage == (day_start(utc_day(now - timedelta(days=3))),)
        assert _count(conn, "SELECT count(*) FROM model_events") == 2

        again = maintain(conn, RETENTION, now=now)
        assert (again.created, again.dropped, again.moved_rows) == ([], [], 0)
        assert set(again.deleted.values()) == {0}


def test_maintain_beside_a_live_writer_loses_no_row(database_url: str, tmp_path: Path) -> None:
    """The server's writer logs into today while maintain drops 23 old days and makes the days ahead."""
    now = datetime.now(UTC)
    with connect(database_url, autocommit=True) as conn:
        _fill_30_days(conn, now)
        for table in ("predictions", "feedback"):  # today's and tomorrow's partitions are missing
            for day in (utc_day(now), utc_day(now) + timedelta(days=1)):
                conn.execute(f"DROP TABLE {partition_name(table, day)}")
        before = _count(conn, "SELECT count(*) FROM predictions WHERE created_at >= %s", now)
    metrics = Metrics()
    writer = PredictionWriter(
        database_url, Spool(tmp_path / "spool", max_bytes=10_000_000), metrics, flush_seconds=0.01
    )
    writer.start()
    sent = 0
    stop = threading.Event()

    def serve() -> None:
        nonlocal sent
        while not stop.is_set():
            at = datetime.now(UTC)
            rows: list[PredictionRow] = [
                (uuid.uuid4(), at, 1, "champion", None, *EXAMPLE.values(), 4.5, 1.0)  # type: ignore[misc]
                for _ in range(20)
            ]
            writer.put(rows)
            sent += len(rows)
            time.sleep(0.005)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        time.sleep(0.3)
        with connect(database_url, autocommit=True) as conn:
            report = maintain(conn, RETENTION, now=now)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(10)
        assert writer.wait_idle(15)
        writer.stop()
    assert report.skipped == []
    assert partition_name("predictions", utc_day(now)) in report.created
    assert metrics.log_rows_dropped._value.get() == 0
    with connect(database_url) as conn:
        logged = _count(conn, "SELECT count(*) FROM predictions WHERE created_at >= %s", now)
    assert logged - before == sent > 0


def test_the_command_prints_what_it_did(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HOUSING_HOME": str(tmp_path),  # its MLflow store and reports folder (monitor reports pruned)
        "PREDICTION_RETENTION_DAYS": "7",
        "PARTITION_DAYS_AHEAD": "4",
    }
    command = [sys.executable, "-c", "from services.cli import main; main()", "db", "maintain"]
    first = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    ahead = utc_day(datetime.now(UTC)) + timedelta(days=4)
    assert partition_name("predictions", ahead) in done["created"]
    assert partition_name("feedback", ahead) in done["created"]
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "created 0 partitions" in second.stdout and "dropped 0 partitions" in second.stdout
