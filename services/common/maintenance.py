"""``housing db maintain``: day partitions ahead and behind, retention for everything the loop writes.

One run, idempotent (a second run does nothing), safe beside live traffic:

- makes sure ``predictions`` and ``feedback`` have a partition for every day of the retention window
  (so history restored or migrated into it has a place) and ``days_ahead`` days past today; a day
  created late takes its rows out of the DEFAULT partition;
- drops whole day partitions that ended before the retention window (a catalogue change: seconds
  for any size), feedback with its predictions, and deletes the DEFAULT partitions' rows past it;
- deletes ``drift_reports``, ``monitor_histograms`` and the live error's ``live_error_buckets`` (each
  with its coverage; both with ``MONITOR_HISTOGRAM_RETENTION_DAYS``) and inactive alert state older
  than their own retention; keeps ``model_events`` (the audit trail).

The monitor's MLflow runs and HTML files are pruned by :mod:`services.common.report_retention`; the
command line runs both and this report carries what each did.

Partition changes take their locks under ``lock_timeout`` (see :mod:`services.common.partitions`); the
row deletions take row locks only. The histogram trim first narrows the coverage row, which waits
for a monitor run in progress (it holds that row), so a run never counts a bucket trimmed under it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import psycopg
from psycopg import sql

from services.common.partitions import (
    DAY,
    LOG_TABLES,
    create_day,
    day_start,
    default_name,
    drop,
    partition_name,
    partitions,
    utc_day,
)


@dataclass(frozen=True)
class Retention:
    """How long each thing the loop writes is kept, and how far ahead partitions are made."""

    prediction_days: int
    days_ahead: int
    drift_report_days: int
    histogram_days: int
    alert_state_days: int
    lock_timeout: timedelta = timedelta(seconds=2)


@dataclass
class MaintenanceReport:
    """What a run did."""

    created: list[str] = field(default_factory=list)
    moved_rows: int = 0
    dropped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)
    kept_from: str = ""
    reports_kept_from: str = ""
    mlflow_runs_deleted: list[str] = field(default_factory=list)
    mlflow_runs_kept: dict[str, str] = field(default_factory=dict)
    report_files_deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        """One line per kind of change, for people."""
        out = [f"predictions and feedback kept from {self.kept_from}"]
        out.append(
            f"created {len(self.created)} partitions"
            + (f": {', '.join(self.created)}" if self.created else "")
        )
        if self.moved_rows:
            out.append(f"moved {self.moved_rows} rows out of the DEFAULT partitions")
        out.append(
            f"dropped {len(self.dropped)} partitions"
            + (f": {', '.join(self.dropped)}" if self.dropped else "")
        )
        out.extend(f"deleted {rows} rows from {table}" for table, rows in self.deleted.items() if rows)
        out.extend(f"skipped {name}: its lock was busy; the next run tries again" for name in self.skipped)
        if self.reports_kept_from:
            out.append(f"monitor reports kept from {self.reports_kept_from}")
            out.append(f"deleted {len(self.mlflow_runs_deleted)} MLflow monitor runs with their artifacts")
            out.append(f"deleted {len(self.report_files_deleted)} report files")
        kept = self.mlflow_runs_kept.items()
        out.extend(f"kept MLflow run {run}: {why}; the next run tries again" for run, why in kept)
        out.extend(f"error: {error}" for error in self.errors)
        return out


def maintain(conn: psycopg.Connection, retention: Retention, *, now: datetime) -> MaintenanceReport:
    """Run the maintenance on ``conn`` (autocommit: each step is its own short transaction)."""
    report = MaintenanceReport()
    cutoff = now - timedelta(days=retention.prediction_days)
    report.kept_from = cutoff.isoformat()
    first, last = utc_day(cutoff), utc_day(now) + timedelta(days=retention.days_ahead)
    for table, key in LOG_TABLES.items():
        _ensure_days(conn, table, first, last, retention.lock_timeout, report)
        for partition in partitions(conn, table):
            if partition.end is not None and partition.end <= cutoff:
                try:
                    done = drop(conn, partition.name, lock_timeout=retention.lock_timeout)
                except psycopg.errors.UndefinedTable:  # another run dropped it
                    continue
                (report.dropped if done else report.skipped).append(partition.name)
        report.deleted[default_name(table)] = _delete(
            conn,
            sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                sql.Identifier(default_name(table)), sql.Identifier(key)
            ),
            cutoff,
        )
    report.deleted["prediction_late_rows"] = _delete(
        conn, sql.SQL("DELETE FROM prediction_late_rows WHERE last_at < %s"), cutoff
    )
    report.deleted["drift_reports"] = _delete(
        conn,
        sql.SQL("DELETE FROM drift_reports WHERE created_at < %s"),
        now - timedelta(days=retention.drift_report_days),
    )
    report.deleted["monitor_histograms"] = _trim_histograms(
        conn, now - timedelta(days=retention.histogram_days)
    )
    report.deleted["live_error_buckets"] = _trim_live_error(
        conn, now - timedelta(days=retention.histogram_days)
    )
    report.deleted["monitor_alert_state"] = _delete(
        conn,
        sql.SQL(
            "DELETE FROM monitor_alert_state WHERE NOT active"
            " AND coalesce(last_seen_at, last_alert_at, episode_started_at, '-infinity') < %s"
        ),
        now - timedelta(days=retention.alert_state_days),
    )
    return report


def _ensure_days(
    conn: psycopg.Connection,
    table: str,
    first: date,
    last: date,
    lock_timeout: timedelta,
    report: MaintenanceReport,
) -> None:
    existing = {p.name for p in partitions(conn, table)}
    day = first
    while day <= last:
        name = partition_name(table, day)
        if name not in existing:
            try:
                moved = create_day(conn, table, day, lock_timeout=lock_timeout)
            except psycopg.errors.DuplicateTable:  # another run made it meanwhile
                moved = 0
            else:
                if moved is None:
                    report.skipped.append(name)
                else:
                    report.created.append(name)
                    report.moved_rows += moved
        day += DAY


def _delete(conn: psycopg.Connection, statement: sql.SQL | sql.Composed, before: datetime) -> int:
    with conn.transaction():
        return conn.execute(statement, (before,)).rowcount


def _trim_histograms(conn: psycopg.Connection, older_than: datetime) -> int:
    # Whole UTC days: a day boundary is also a boundary of the monitor's 10-minute buckets, so the
    # coverage never starts inside a bucket (which the monitor would then count half of).
    before = day_start(utc_day(older_than))
    with conn.transaction():
        # Narrow the coverage first: it waits for a monitor run holding the row, and a run that starts
        # after waits for this transaction, so no run sums a range it believes counted but is trimmed.
        conn.execute(
            "UPDATE monitor_histogram_coverage SET filled_from = greatest(filled_from, %s)"
            " WHERE filled_from < %s",
            (before, before),
        )
        conn.execute("DELETE FROM monitor_histogram_coverage WHERE filled_from >= filled_until")
        return conn.execute("DELETE FROM monitor_histograms WHERE bucket_start < %s", (before,)).rowcount


def _trim_live_error(conn: psycopg.Connection, older_than: datetime) -> int:
    """The live error's kept bucket sums, trimmed like the histograms (whole UTC days, coverage first)."""
    before = day_start(utc_day(older_than))
    with conn.transaction():
        conn.execute(
            "UPDATE live_error_coverage SET filled_from = greatest(filled_from, %s) WHERE filled_from < %s",
            (before, before),
        )
        conn.execute("DELETE FROM live_error_coverage WHERE filled_from >= filled_until")
        return conn.execute("DELETE FROM live_error_buckets WHERE bucket_start < %s", (before,)).rowcount
