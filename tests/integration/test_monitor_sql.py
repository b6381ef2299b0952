"""The monitor's SQL against a real Postgres: histograms equal the in-memory ones, kept buckets, the lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.features import FEATURE_NAMES
from services.common.profile import build_profile
from services.common.vocabulary import Role
from services.monitor.histograms import count_range, window_counts
from services.monitor.lock import monitor_lock
from services.monitor.psi import psi
from services.monitor.sample import sample_window


def _numpy_counts(x: np.ndarray, edges: list[float]) -> list[int]:
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1).tolist()


def test_psi_from_sql_equals_psi_in_memory_on_the_same_rows(database_url: str, dataset: Dataset) -> None:
    profile = build_profile(dataset.x_train)
    rows = dataset.x_holdout.copy()
    rows[:, 0] *= 1.5  # a shift, so the numbers are not all near zero
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    with psycopg.connect(database_url) as conn:
        insert_predictions(conn, rows, start=start, spacing=timedelta(seconds=1.7))
        insert_predictions(conn, rows[:50], start=start, spacing=timedelta(seconds=1), role=Role.CHALLENGER)
        conn.commit()
        counts = window_counts(conn, profile, start, now, now=now, retention=timedelta(hours=48))
        conn.commit()
    assert counts.rows == len(rows)
    assert counts.kept_buckets >= 8  # most of the window came from kept buckets
    for index, name in enumerate(FEATURE_NAMES):
        bins = profile.bins[name]
        expected = _numpy_counts(rows[:, index], bins.edges)
        assert counts.counts[name] == expected, name
        assert psi(bins.expected, counts.counts[name]) == psi(bins.expected, expected)
    assert psi(profile.bins["MedInc"].expected, counts.counts["MedInc"]) >= 0.2


def test_a_later_run_reads_only_the_new_rows(database_url: str, dataset: Dataset) -> None:
    profile = build_profile(dataset.x_train)
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    old, new = dataset.x_holdout[:3000], dataset.x_holdout[3000:3600]
    with psycopg.connect(database_url) as conn:
        insert_predictions(conn, old, start=start, spacing=timedelta(seconds=2))  # ~100 minutes
        conn.commit()
        first = window_counts(conn, profile, start, now, now=now, retention=timedelta(hours=48))
        conn.commit()
        later = now + timedelta(minutes=20)
        insert_predictions(conn, new, start=now, spacing=timedelta(seconds=1.5))  # the next 15 minutes
        conn.commit()
        second = window_counts(conn, profile, start, later, now=later, retention=timedelta(hours=48))
        conn.commit()
        direct = count_range(conn, profile, start, later)
    assert first.rows == len(old) and first.scanned == len(old)
    assert second.rows == len(old) + len(new)
    # the new rows, plus the window's first, partial bucket (10 minutes of old rows at most)
    assert second.scanned <= len(new) + 301
    assert second.counts == direct


def test_the_sample_is_bounded_and_from_the_window(database_url: str, dataset: Dataset) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        insert_predictions(  # a served price each row's own (half its MedInc), to find it next to its row
            conn,
            dataset.x_holdout,
            start=now - timedelta(hours=1),
            spacing=timedelta(seconds=0.5),
            model_version=3,
            predictions=dataset.x_holdout[:, 0] / 2,
        )
        insert_predictions(
            conn, dataset.x_holdout[:500] + 100, start=now - timedelta(days=3), spacing=timedelta(0)
        )
        conn.commit()
        conn.execute("ANALYZE predictions")
        sample = sample_window(
            conn, now - timedelta(hours=1), now, rows=1000, window_rows=len(dataset.x_holdout)
        )
    assert len(sample) == 1000 and sample.x.shape == (1000, dataset.x_holdout.shape[1])
    assert sample.x[:, 1].max() <= dataset.x_holdout[:, 1].max()  # none of the old, shifted rows
    assert (sample.versions == 3).all() and np.array_equal(sample.predictions, sample.x[:, 0] / 2)
    assert len(sample.served_by(3)[0]) == 1000 and len(sample.served_by(1)[1]) == 0


def test_only_one_monitor_holds_the_lock(database_url: str) -> None:
    with monitor_lock(database_url) as first:
        assert first
        with monitor_lock(database_url) as second:
            assert not second
    with monitor_lock(database_url) as again:
        assert again
