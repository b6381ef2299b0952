"""Live error: a model's MAE on its own served predictions that have feedback, computed in SQL.

A run keeps per-bucket sums (``live_error_buckets``: per model version and 10-minute bucket of the
prediction's time, the sum of |error| and the count of labelled champion predictions) and adds only the
feedback committed since the previous run: the feedback whose transaction the previous run's snapshot
could not see (``feedback.xid``, ``pg_visible_in_snapshot``), so each is added exactly once, however late
it comes. A window's MAE is the sum of its buckets' sums over the sum of their counts, plus its two
partial ends (and the buckets younger than ``SETTLE``) counted directly.

Feedback can arrive before its prediction row is logged (the server files truth for ids it served but
has not written yet; a spool replays them later). Such feedback joins nothing when it is new; its
prediction then lands as a late row (the writer records late batches in ``prediction_late_rows``, see
:mod:`services.monitor.histograms`), and the run that reads that record recounts the touched buckets
whole, after adding, in the same snapshot: a recount replaces, so nothing counts twice.

Transaction ids belong to one server: a run that finds the database restored into another one
(:mod:`services.monitor.restored`) drops the sums and recounts them from the rows, saying so.

The whole update runs in one REPEATABLE READ transaction: the snapshot the additions read, the
recounts and the snapshot stored for the next run are one and the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from services.common.vocabulary import Role
from services.monitor.histograms import BUCKET, BUCKET_EPOCH, SETTLE, bucket_runs, ceil_bucket, floor_bucket
from services.monitor.restored import Server, forget_foreign_feedback, this_server

ATTEMPTS = 3  # a concurrent `housing db maintain` trim is a serialization failure: try again


@dataclass(frozen=True)
class LiveError:
    version: int
    rows: int
    mae: float | None


def live_error(conn: psycopg.Connection, version: int, start: datetime | None, end: datetime) -> LiveError:
    """MAE (100k USD) of ``version``'s champion predictions made in [start, end) that have feedback.

    The MAE is None when it is undefined: no such rows, or a logged price that is not finite. The time
    range is stated on both tables so each reads only the day partitions of the window.
    """
    row = conn.execute(
        "SELECT count(*), avg(abs(p.prediction - f.actual)) FROM predictions p"
        " JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = %s AND p.model_version = %s"
        " AND (%s::timestamptz IS NULL OR p.created_at >= %s) AND p.created_at < %s"
        " AND (%s::timestamptz IS NULL OR f.predicted_at >= %s) AND f.predicted_at < %s",
        (Role.CHAMPION, version, start, start, end, start, start, end),
    ).fetchone()
    rows = int(row[0]) if row else 0
    mae = float(row[1]) if row and row[1] is not None else None
    # avg() of no rows is NULL; a NaN logged price would make it NaN: both mean "no live MAE" (None).
    return LiveError(version, rows, mae if mae is not None and math.isfinite(mae) else None)


def _direct(conn: psycopg.Connection, version: int, start: datetime, end: datetime) -> tuple[float, int]:
    """(sum of |error|, labelled rows) of ``version``'s champion predictions in [start, end)."""
    row = conn.execute(
        "SELECT coalesce(sum(abs(p.prediction - f.actual)), 0), count(*) FROM predictions p"
        " JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = %s AND p.model_version = %s AND p.created_at >= %s AND p.created_at < %s"
        " AND f.predicted_at >= %s AND f.predicted_at < %s",
        (Role.CHAMPION, version, start, end, start, end),
    ).fetchone()
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


# The labelled champion predictions per (version, bucket), from the two tables; {where} narrows feedback.
_SUMS = (
    "SELECT p.model_version, date_bin(%(bucket)s, p.created_at, %(epoch)s) AS b,"
    " sum(abs(p.prediction - f.actual)), count(*) FROM feedback f"
    " JOIN predictions p ON p.id = f.prediction_id AND p.created_at = f.predicted_at"
    " WHERE p.role = %(role)s AND f.predicted_at >= %(low)s AND f.predicted_at < %(high)s"
    " AND p.created_at >= %(low)s AND p.created_at < %(high)s{where} GROUP BY 1, 2"
)


def _recount(conn: psycopg.Connection, low: datetime, high: datetime) -> None:
    """Replace the kept sums of the buckets in [low, high) by a count of what this snapshot sees."""
    conn.execute("DELETE FROM live_error_buckets WHERE bucket_start >= %s AND bucket_start < %s", (low, high))
    conn.execute(
        "INSERT INTO live_error_buckets (model_version, bucket_start, abs_error_sum, rows) "
        + _SUMS.format(where=""),
        {"bucket": BUCKET, "epoch": BUCKET_EPOCH, "role": Role.CHAMPION, "low": low, "high": high},
    )


def _add_new_feedback(conn: psycopg.Connection, seen: str, low: datetime, high: datetime) -> int:
    """Add the feedback the snapshot ``seen`` could not see to the kept buckets in [low, high)."""
    row = conn.execute(
        "WITH added (model_version, bucket_start, abs_error_sum, rows) AS ("
        + _SUMS.format(
            where=" AND f.xid >= pg_snapshot_xmin(%(seen)s::pg_snapshot)"
            " AND NOT pg_visible_in_snapshot(f.xid, %(seen)s::pg_snapshot)"
        )
        + "), kept AS (INSERT INTO live_error_buckets AS k SELECT * FROM added"
        " ON CONFLICT (model_version, bucket_start) DO UPDATE"
        " SET abs_error_sum = k.abs_error_sum + EXCLUDED.abs_error_sum, rows = k.rows + EXCLUDED.rows)"
        " SELECT coalesce(sum(rows), 0) FROM added",
        {
            "bucket": BUCKET,
            "epoch": BUCKET_EPOCH,
            "role": Role.CHAMPION,
            "low": low,
            "high": high,
            "seen": seen,
        },
    ).fetchone()
    return int(row[0]) if row else 0


def _late_buckets(conn: psycopg.Connection, seen: str, low: datetime, high: datetime) -> list[datetime]:
    """The buckets in [low, high) holding predictions logged late in transactions ``seen`` could not see."""
    row = conn.execute(
        "SELECT array(SELECT DISTINCT b FROM prediction_late_rows r CROSS JOIN LATERAL generate_series("
        "   date_bin(%(bucket)s, greatest(r.first_at, %(low)s), %(epoch)s),"
        "   least(r.last_at, %(high)s), %(bucket)s) AS b"
        " WHERE r.xid >= pg_snapshot_xmin(%(seen)s::pg_snapshot)"
        "   AND NOT pg_visible_in_snapshot(r.xid, %(seen)s::pg_snapshot)"
        "   AND r.last_at >= %(low)s AND r.first_at < %(high)s AND b >= %(low)s AND b < %(high)s"
        " ORDER BY b)",
        {"bucket": BUCKET, "epoch": BUCKET_EPOCH, "low": low, "high": high, "seen": seen},
    ).fetchone()
    return list(row[0]) if row else []


@dataclass(frozen=True)
class KeptLiveError:
    """The window's live error and what the run read to get it."""

    error: LiveError
    details: dict[str, int]
    restored: str | None = None  # why the kept sums were recounted from the rows (None: they were not)


def kept_live_error(
    conn: psycopg.Connection,
    version: int,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    retention: timedelta,
) -> KeptLiveError:
    """``version``'s live MAE over [start, end) from the kept bucket sums, bringing them up to date first.

    Commits what ``conn`` holds, then works in its own REPEATABLE READ transaction (committed on return).
    The caller must hold the monitor lock: the kept sums are not written concurrently.
    """
    conn.commit()
    isolation = conn.isolation_level
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        for attempt in range(ATTEMPTS):
            try:
                kept = _update_and_sum(conn, version, start, end, now=now, retention=retention)
                conn.commit()
                return kept
            except psycopg.errors.SerializationFailure:
                conn.rollback()
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.isolation_level = isolation


def _update_and_sum(
    conn: psycopg.Connection,
    version: int,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    retention: timedelta,
) -> KeptLiveError:
    """``version``'s live MAE over [start, end): the kept sums over its whole settled buckets (brought up
    to date and stored with their coverage), plus the rows outside them counted directly."""
    first, last = ceil_bucket(start), floor_bucket(min(end, now - SETTLE))
    if first >= last:  # no whole settled bucket in the window: count it all directly
        total, rows = _direct(conn, version, start, end)
        return KeptLiveError(_error(version, total, rows), {"direct_rows": rows})
    details = {"added_rows": 0, "recounted_buckets": 0}
    server, filled_from, filled_until = _bring_up_to_date(conn, first, last, details)
    kept_from = max(filled_from, floor_bucket(now - retention))
    conn.execute("DELETE FROM live_error_buckets WHERE bucket_start < %s", (kept_from,))
    conn.execute(
        "INSERT INTO live_error_coverage (id, filled_from, filled_until, seen, system_identifier)"
        " VALUES (true, %s, %s, pg_current_snapshot(), %s)"
        " ON CONFLICT (id) DO UPDATE SET filled_from = EXCLUDED.filled_from,"
        " filled_until = EXCLUDED.filled_until, seen = EXCLUDED.seen,"
        " system_identifier = EXCLUDED.system_identifier, updated_at = now()",
        (min(kept_from, filled_until), filled_until, server.system_identifier),
    )
    row = conn.execute(
        "SELECT coalesce(sum(abs_error_sum), 0), coalesce(sum(rows), 0) FROM live_error_buckets"
        " WHERE model_version = %s AND bucket_start >= %s AND bucket_start < %s",
        (version, first, last),
    ).fetchone()
    total, rows = (float(row[0]), int(row[1])) if row else (0.0, 0)
    details["kept_rows"] = rows
    for low, high in ((start, first), (last, end)):
        if low < high:
            part, part_rows = _direct(conn, version, low, high)
            total, rows = total + part, rows + part_rows
            details["direct_rows"] = details.get("direct_rows", 0) + part_rows
    return KeptLiveError(_error(version, total, rows), details, server.moved)


def _bring_up_to_date(
    conn: psycopg.Connection, first: datetime, last: datetime, details: dict[str, int]
) -> tuple[Server, datetime, datetime]:
    """Bring the kept bucket sums up to date over at least [first, last), noting what it did in ``details``;
    returns (this server, the kept sums' new [filled_from, filled_until)).

    Recounts them all when nothing usable is kept (no coverage, one that does not touch the window, or
    another server's); else adds the feedback since the stored snapshot, recounts the late buckets and
    counts the window's buckets the kept range did not reach.
    """
    coverage = conn.execute(
        "SELECT filled_from, filled_until, seen::text, system_identifier,"
        " pg_snapshot_xmin(seen)::text FROM live_error_coverage FOR UPDATE"
    ).fetchone()
    server = this_server(conn, coverage[3], coverage[4]) if coverage else this_server(conn, None, None)
    if coverage is None or coverage[1] < first or coverage[0] > last or server.moved:
        conn.execute("DELETE FROM live_error_buckets")
        _recount(conn, first, last)
        filled_from, filled_until = first, last
        details["recounted_buckets"] = int((last - first) / BUCKET)
        # Before the snapshot is stored: restored feedback whose old id the new ids could reach.
        if forgotten := forget_foreign_feedback(conn):
            details["forgotten_ids"] = forgotten
    else:
        filled_from, filled_until, seen, _, _ = coverage
        details["added_rows"] = _add_new_feedback(conn, seen, filled_from, filled_until)
        late = _late_buckets(conn, seen, filled_from, filled_until)
        for low, high in bucket_runs(late):  # after the additions: a recount replaces what they added
            _recount(conn, low, high)
        details["recounted_buckets"] = len(late)
        if first < filled_from:
            _recount(conn, first, filled_from)
        if filled_until < last:
            _recount(conn, filled_until, last)
        filled_from, filled_until = min(first, filled_from), max(last, filled_until)
    return server, filled_from, filled_until


def _error(version: int, total: float, rows: int) -> LiveError:
    # No rows: no MAE; a NaN or infinite logged price makes the sum so: no MAE either (None).
    mae = total / rows if rows else None
    return LiveError(version, rows, mae if mae is not None and math.isfinite(mae) else None)


def degraded(
    live_mae: float | None, reference_mae: float | None, rows: int, *, tolerance: float, min_rows: int
) -> bool:
    """True when enough labelled rows show a live MAE beyond the training MAE by more than ``tolerance``."""
    if live_mae is None or reference_mae is None or rows < min_rows:
        return False
    return live_mae > reference_mae * (1 + tolerance)
