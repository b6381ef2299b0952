"""Which rows the writer records as late, and why one minute is early enough for the monitor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.common.features import EXAMPLE
from services.inference.rows import PredictionRow
from services.inference.writer import LATE_AFTER, late_range
from services.monitor.histograms import SETTLE

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _row(at: datetime) -> PredictionRow:
    return (uuid.uuid4(), at, 1, "champion", None, *EXAMPLE.values(), 2.0, 1.0)  # type: ignore[return-value]


def test_only_rows_made_before_the_limit_make_the_range() -> None:
    before = NOW - LATE_AFTER
    assert late_range([], before) is None
    assert late_range([_row(NOW), _row(before)], before) is None
    rows = [_row(NOW), _row(NOW - timedelta(hours=2)), _row(NOW - timedelta(hours=1)), _row(NOW)]
    assert late_range(rows, before) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1), 2)


def test_a_row_not_recorded_as_late_is_committed_before_its_bucket_is_kept() -> None:
    # Not late: made at most LATE_AFTER before the COPY starts, which the statement timeout (15 s)
    # bounds; the monitor keeps a bucket SETTLE after its end; 30 s and more are left for two clocks.
    assert LATE_AFTER + timedelta(seconds=15) + timedelta(seconds=30) <= SETTLE
