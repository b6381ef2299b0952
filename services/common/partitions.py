"""The day partitions of the prediction log: which exist, creating one, dropping one, with short locks.

``predictions`` is partitioned by ``created_at`` and ``feedback`` by ``predicted_at`` (its prediction's
``created_at``), one partition per UTC day each, with the same names and bounds (``predictions_p20250131``
and ``feedback_p20250131`` hold 2025-01-31 00:00 to 2025-02-01 00:00 UTC), so a day's truth is dropped
with its predictions. Rows for a day without a partition land in the table's DEFAULT partition.

Locks: creating a partition holds writers off the table (SHARE ROW EXCLUSIVE; readers go on) and the
DEFAULT partition (ACCESS EXCLUSIVE) for the few milliseconds a CREATE, a move of that day's rows out
of the normally empty DEFAULT partition and an ATTACH take; dropping a partition takes ACCESS EXCLUSIVE
on the table for a catalogue change (no row is read). Each step runs in its own short transaction
with ``lock_timeout`` set, so it never queues (and stalls the writers queued behind it) for longer
than that; a step that times out is retried with back-off, then reported as skipped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")

# table -> its partition key
LOG_TABLES: dict[str, str] = {"predictions": "created_at", "feedback": "predicted_at"}
DAY = timedelta(days=1)
_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One partition of a log table: ``start``/``end`` are None for the DEFAULT partition."""

    name: str
    start: datetime | None
    end: datetime | None
    rows_estimate: int

    @property
    def is_default(self) -> bool:
        return self.start is None


def day_start(day: date) -> datetime:
    return datetime.combine(day, clock(), tzinfo=UTC)


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def partitions(conn: psycopg.Connection, table: str) -> list[Partition]:
    """The partitions of ``table`` (the DEFAULT one first, then by start), with planner row estimates."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), greatest(c.reltuples, 0)::bigint"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (table,),
    ).fetchall()
    found = []
    for name, bound, estimate in rows:
        match = _BOUND.search(bound or "")
        if match is None:
            found.append(Partition(name, None, None, int(estimate)))
            continue
        low, high = conn.execute("SELECT %s::timestamptz, %s::timestamptz", match.groups()).fetchone() or (
            None,
            None,
        )
        found.append(Partition(name, low, high, int(estimate)))
    utc_min = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (not p.is_default, p.start or utc_min))


def log_partitions_end(conn: psycopg.Connection) -> datetime | None:
    """Where the prediction log's day partitions run out: the earliest, over ``predictions`` and
    ``feedback``, of the end of the table's last day partition (None: a table has no day partition)."""
    ends = []
    for table in LOG_TABLES:
        days = [p.end for p in partitions(conn, table) if p.end is not None]
        if not days:
            return None
        ends.append(max(days))
    return min(ends)


def rows_estimate(conn: psycopg.Connection, table: str, start: datetime, end: datetime) -> int:
    """Planner estimate of the rows in the partitions a scan of [start, end) reads (DEFAULT included)."""
    return sum(
        p.rows_estimate
        for p in partitions(conn, table)
        if p.is_default or (p.start is not None and p.end is not None and p.start < end and p.end > start)
    )


def _with_lock_timeout(
    conn: psycopg.Connection, lock_timeout: timedelta, attempts: int, step: Callable[[], T]
) -> tuple[bool, T | None]:
    """Run ``step`` in its own transaction under ``lock_timeout``, retrying; (committed, its result)."""
    for attempt in range(attempts):
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(
                        sql.Literal(f"{int(lock_timeout.total_seconds() * 1000)}ms")
                    )
                )
                return True, step()
        except psycopg.errors.LockNotAvailable:
            time.sleep(min(2.0, 0.1 * 2**attempt))
    return False, None


def create_day(
    conn: psycopg.Connection, table: str, day: date, *, lock_timeout: timedelta, attempts: int = 5
) -> int | None:
    """Create ``table``'s partition for ``day``, moving that day's rows out of the DEFAULT partition.

    Returns the rows moved, or None when the locks could not be had within ``attempts`` tries.
    """
    key = LOG_TABLES[table]
    name, default = partition_name(table, day), default_name(table)
    names: dict[str, sql.Composable] = {
        "default": sql.Identifier(default),
        "name": sql.Identifier(name),
        "table": sql.Identifier(table),
        "check": sql.Identifier(f"{name}_bounds"),
        "key": sql.Identifier(key),
    }
    low, high = day_start(day), day_start(day + DAY)
    names.update(low=sql.Literal(low), high=sql.Literal(high))  # DDL takes no parameters

    def step() -> int:
        # Writers wait for this transaction (a moment: the DEFAULT partition is normally empty): a COPY
        # that routed a row to the DEFAULT partition before the new day was attached would otherwise
        # fail its partition check. Readers of the day partitions are not blocked. The new table is
        # filled from the DEFAULT partition and attached; a CHECK constraint matching the bounds
        # lets ATTACH skip its validation scan of the new table.
        conn.execute(sql.SQL("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE").format(**names))
        conn.execute(sql.SQL("LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE").format(**names))
        conn.execute(
            sql.SQL("CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                **names
            )
        )
        conn.execute(
            sql.SQL(
                "ALTER TABLE {name} ADD CONSTRAINT {check} CHECK ({key} >= {low} AND {key} < {high})"
            ).format(**names)
        )
        moved = conn.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {default} WHERE {key} >= %s AND {key} < %s RETURNING *)"
                " INSERT INTO {name} SELECT * FROM moved"
            ).format(**names),
            (low, high),
        ).rowcount
        conn.execute(
            sql.SQL("ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})").format(
                **names
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {name} DROP CONSTRAINT {check}").format(**names))
        return moved

    done, moved = _with_lock_timeout(conn, lock_timeout, attempts, step)
    return moved if done else None


def drop(conn: psycopg.Connection, partition: str, *, lock_timeout: timedelta, attempts: int = 5) -> bool:
    """Drop one partition (a catalogue change, no row is read); False when the lock could not be had."""

    def step() -> None:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))

    done, _ = _with_lock_timeout(conn, lock_timeout, attempts, step)
    return done
