"""The day-partitioned prediction log: queries read only the days they need (EXPLAIN), the writer never
fails for a missing day, and a day created later takes its rows out of the DEFAULT partition."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from benchmarks.monitor_data import insert_predictions
from services.common.database import connect
from services.common.dataset import Dataset
from services.common.features import EXAMPLE, FEATURE_COLUMNS
from services.common.partitions import create_day, day_start, log_partitions_end, partition_name
from services.common.profile import build_profile
from services.inference.feedback import predicted_at, record_feedback
from services.inference.ids import id_time
from services.inference.metrics import Metrics
from services.inference.rows import PredictionRow
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter
from services.monitor.histograms import count_range
from services.monitor.live_error import live_error
from services.trainer.labelled import fetch_labelled

LOCK = timedelta(seconds=2)


class PlanRecorder:
    """A connection stand-in: each query is EXPLAINed first, and the relations its plan reads kept."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.read: list[set[str]] = []

    def execute(self, query: Any, params: Any = None) -> psycopg.Cursor[Any]:
        explain = (
            sql.Composed([sql.SQL("EXPLAIN (FORMAT JSON) "), query])
            if isinstance(query, sql.Composable)
            else "EXPLAIN (FORMAT JSON) " + query
        )
        row = self.conn.execute(explain, params).fetchone()
        assert row is not None
        self.read.append(set(_relations(row[0])))
        return self.conn.execute(query, params)


def _relations(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            yield plan["Relation Name"]
        for value in plan.values():
            yield from _relations(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _relations(item)


def _days_back(n: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=n)


@pytest.fixture
def five_days(database_url: str, dataset: Dataset) -> Iterator[tuple[psycopg.Connection, list[date]]]:
    """Partitions for 10 to 6 days ago, 300 labelled champion predictions in each (every 4 minutes)."""
    days = [_days_back(n) for n in range(10, 5, -1)]
    with connect(database_url, autocommit=True) as conn:
        for day in days:
            for table in ("predictions", "feedback"):
                assert create_day(conn, table, day, lock_timeout=LOCK) == 0
            x = dataset.x_holdout[:300]
            insert_predictions(
                conn, x, start=day_start(day), spacing=timedelta(minutes=4), actual=dataset.y_holdout[:300]
            )
        conn.execute("ANALYZE predictions")
        conn.execute("ANALYZE feedback")
        yield conn, days


def test_the_window_histogram_reads_only_its_days_partitions(
    five_days: tuple[psycopg.Connection, list[date]], dataset: Dataset
) -> None:
    conn, days = five_days
    recorder = PlanRecorder(conn)
    middle = day_start(days[2])
    counts = count_range(
        recorder, build_profile(dataset.x_train), middle + timedelta(hours=2), middle + timedelta(hours=6)
    )  # type: ignore[arg-type]
    assert sum(counts["MedInc"]) == 60
    assert recorder.read == [{partition_name("predictions", days[2])}]
    # a window across midnight reads the two days, no more
    recorder.read.clear()
    count_range(
        recorder, build_profile(dataset.x_train), middle - timedelta(hours=1), middle + timedelta(hours=1)
    )  # type: ignore[arg-type]
    assert recorder.read == [{partition_name("predictions", days[1]), partition_name("predictions", days[2])}]


def test_labelled_rows_and_live_error_read_only_the_days_since_their_start(
    five_days: tuple[psycopg.Connection, list[date]],
) -> None:
    conn, days = five_days
    recorder = PlanRecorder(conn)
    labelled = fetch_labelled(recorder, day_start(days[3]))  # type: ignore[arg-type]
    assert len(labelled) == 600
    read = recorder.read[0]
    for old in days[:3]:
        assert partition_name("predictions", old) not in read
        assert partition_name("feedback", old) not in read
    for kept in days[3:]:
        assert {partition_name("predictions", kept), partition_name("feedback", kept)} <= read

    recorder.read.clear()
    error = live_error(recorder, 1, day_start(days[1]), day_start(days[2]))  # type: ignore[arg-type]
    assert error.rows == 300
    assert recorder.read == [{partition_name("predictions", days[1]), partition_name("feedback", days[1])}]


def _row(at: datetime) -> PredictionRow:
    return (uuid.uuid4(), at, 1, "champion", None, *EXAMPLE.values(), 4.5, 1.0)  # type: ignore[return-value]


def test_the_writer_logs_across_a_midnight_without_partitions_and_the_day_takes_its_rows_later(
    database_url: str, tmp_path: Path
) -> None:
    # Days far ahead have no partition: their rows land in the DEFAULT partition, nothing fails.
    midnight = day_start(_days_back(-10))
    before = [_row(midnight - timedelta(microseconds=1 + i)) for i in range(40)]
    after = [_row(midnight + timedelta(microseconds=i)) for i in range(60)]
    metrics = Metrics()
    writer = PredictionWriter(
        database_url, Spool(tmp_path / "spool", max_bytes=10_000_000), metrics, flush_seconds=0.02
    )
    writer.start()
    try:
        writer.put(before)
        writer.put(after)
        assert writer.wait_idle(15)
    finally:
        writer.stop()
    assert metrics.log_write_errors._value.get() == 0
    assert metrics.log_rows_written._value.get() == 100
    with connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM predictions_default").fetchone() == (100,)
        # maintain creates the days later: each takes its rows out of the DEFAULT partition
        assert create_day(conn, "predictions", midnight.date(), lock_timeout=LOCK) == 60
        assert create_day(conn, "predictions", midnight.date() - timedelta(days=1), lock_timeout=LOCK) == 40
        assert conn.execute("SELECT count(*) FROM predictions_default").fetchone() == (0,)
        placed = conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM predictions GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert placed == [
            (partition_name("predictions", midnight.date() - timedelta(days=1)), 40),
            (partition_name("predictions", midnight.date()), 60),
        ]
        # a replay of the same rows (an unacknowledged commit) still writes nothing twice
    replay = PredictionWriter(
        database_url, Spool(tmp_path / "spool2", max_bytes=10_000_000), Metrics(), flush_seconds=0.02
    )
    replay.start()
    try:
        replay._copy(before + after, staged=True)
    finally:
        replay.stop()
    with connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM predictions").fetchone() == (100,)


def test_creating_a_day_beside_a_live_writer_loses_nothing_and_stalls_it_briefly(database_url: str) -> None:
    day = _days_back(-20)
    columns = (
        "id, created_at, model_version, role, shadow_of, "
        + ", ".join(FEATURE_COLUMNS)
        + ", prediction, latency_ms"
    )
    stop = threading.Event()
    written: list[int] = []
    slowest: list[float] = [0.0]

    errors: list[BaseException] = []

    def write() -> None:
        try:
            _write()
        except BaseException as error:
            errors.append(error)

    def _write() -> None:
        with connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.monotonic()
                with conn.cursor().copy(f"COPY predictions ({columns}) FROM STDIN") as copy:
                    for _ in range(50):
                        at = day_start(day) + timedelta(seconds=len(written))
                        copy.write_row(_row(at))
                        written.append(1)
                slowest[0] = max(slowest[0], time.monotonic() - started)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        time.sleep(0.5)
        with connect(database_url, autocommit=True) as admin:
            moved = create_day(admin, "predictions", day, lock_timeout=LOCK)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
    assert errors == []
    assert moved is not None and moved > 0
    with connect(database_url) as conn:
        in_day = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partition_name("predictions", day)))
        ).fetchone()
        left = conn.execute("SELECT count(*) FROM predictions_default").fetchone()
    assert in_day == (len(written),) and left == (0,)
    assert slowest[0] < 1.0


def uuid7_at(at: datetime) -> uuid.UUID:
    """A UUIDv7 made at ``at`` (RFC 9562 layout: 48-bit ms, version 7, 12 random bits, variant, 62 random)."""
    random = uuid.uuid4().int
    value = (int(at.timestamp() * 1000) << 80) | (7 << 76) | (random & ((1 << 76) - 1))
    return uuid.UUID(int=(value & ~(0b11 << 62)) | (0b10 << 62))


def test_the_feedback_lookup_reads_only_the_partition_of_the_ids_day(
    five_days: tuple[psycopg.Connection, list[date]], database_url: str
) -> None:
    conn, days = five_days
    day = days[2]
    made = day_start(day) + timedelta(hours=12)
    prediction_id = uuid7_at(made + timedelta(microseconds=300))
    assert prediction_id.version == 7 and id_time(prediction_id) == made
    conn.execute(
        "INSERT INTO predictions (id, created_at, model_version, role, med_inc, house_age, ave_rooms,"
        " ave_bedrms, population, ave_occup, latitude, longitude, prediction, latency_ms)"
        " VALUES (%s, %s, 1, 'champion', 3, 20, 5, 1, 1000, 3, 34, -118, 2.0, 1.0)",
        (prediction_id, made),
    )
    recorder = PlanRecorder(conn)
    assert predicted_at(recorder, prediction_id) == made  # type: ignore[arg-type]
    assert recorder.read == [{partition_name("predictions", day)}]
    # the truth is filed under the prediction's day, and a repeat changes nothing
    with connect(database_url) as other:
        assert record_feedback(other, prediction_id, 210_000.0, {}) == "recorded"
        assert record_feedback(other, prediction_id, 210_000.0, {}) == "already recorded"
    placed = conn.execute(
        "SELECT tableoid::regclass::text FROM feedback WHERE prediction_id = %s", (prediction_id,)
    )
    assert placed.fetchall() == [(partition_name("feedback", day),)]
    # an id from before UUIDv7 is still found, in every partition's primary key
    old = uuid.uuid4()
    conn.execute(
        "INSERT INTO predictions (id, created_at, model_version, role, med_inc, house_age, ave_rooms,"
        " ave_bedrms, population, ave_occup, latitude, longitude, prediction, latency_ms)"
        " VALUES (%s, %s, 1, 'champion', 3, 20, 5, 1, 1000, 3, 34, -118, 2.0, 1.0)",
        (old, made),
    )
    assert predicted_at(conn, old) == made


def test_the_log_runs_out_where_the_first_table_does(database_url: str) -> None:
    """The monitor pushes this for HousingPartitionsRunningOut: the earliest of the two tables' last
    day partition's end, so feedback running out first counts as the log running out."""
    today = datetime.now(UTC).date()
    with connect(database_url, autocommit=True) as conn:
        assert create_day(conn, "predictions", today + timedelta(days=40), lock_timeout=LOCK) == 0
        assert create_day(conn, "feedback", today + timedelta(days=30), lock_timeout=LOCK) == 0
        assert log_partitions_end(conn) == day_start(today + timedelta(days=31))
        assert create_day(conn, "feedback", today + timedelta(days=50), lock_timeout=LOCK) == 0
        assert log_partitions_end(conn) == day_start(today + timedelta(days=41))
