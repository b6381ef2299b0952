"""Which labelled rows are new to the loop: the newest row the champion or a refused candidate trained on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.monitor.new_labels import NewLabels, TrainedOn, newest_trained

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CASES: dict[str, tuple[TrainedOn, TrainedOn | None, datetime | None]] = {
    "a champion that saw no labelled row, nothing refused": (TrainedOn(1, None), None, None),
    "the champion's rows": (TrainedOn(2, T0), None, T0),
    "a refused candidate that saw newer rows moves the line": (
        TrainedOn(2, T0),
        TrainedOn(3, T0 + timedelta(hours=1)),
        T0 + timedelta(hours=1),
    ),
    "an older refused candidate does not move it back": (
        TrainedOn(2, T0),
        TrainedOn(1, T0 - timedelta(hours=1)),
        T0,
    ),
    "a refused candidate that saw no labelled row": (TrainedOn(2, T0), TrainedOn(3, None), T0),
    "a refused candidate over a champion that saw none": (TrainedOn(1, None), TrainedOn(3, T0), T0),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_newest_trained_row(case: tuple[TrainedOn, TrainedOn | None, datetime | None]) -> None:
    champion, refused, expected = case
    assert newest_trained(champion, refused) == expected


def test_the_record_is_json_ready() -> None:
    labels = NewLabels(12, 667, T0, None, TrainedOn(2, T0, timedelta(hours=720)), TrainedOn(3, None))
    assert labels.as_dict() == {
        "new": 12,
        "needed": 667,
        "after": T0.isoformat(),
        "since": None,
        "champion": {"version": 2, "labelled_until": T0.isoformat(), "window_hours": 720.0},
        "refused": {"version": 3, "labelled_until": None, "window_hours": None},
    }
