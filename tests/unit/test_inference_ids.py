"""Prediction ids: UUIDv7, increasing, and their time bounds the row's created_at."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.inference.ids import CREATED_AT_SLACK, created_at_bounds, id_time, new_ids


def test_ids_are_uuid7_in_increasing_order_and_tell_when_they_were_made() -> None:
    before = datetime.now(UTC)
    ids = new_ids(5000)
    after = datetime.now(UTC)
    assert all(one.version == 7 for one in ids)
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)  # a B-tree on them appends
    made = id_time(ids[0])
    assert made is not None
    assert before - timedelta(milliseconds=1) <= made <= after


def test_the_bounds_hold_the_created_at_stamped_beside_the_id_and_old_ids_have_none() -> None:
    created = datetime.now(UTC)
    (one,) = new_ids(1)
    bounds = created_at_bounds(one)
    assert bounds is not None
    low, high = bounds
    assert low <= created < high
    assert high - low == 2 * CREATED_AT_SLACK
    assert created_at_bounds(uuid.uuid4()) is None
    assert id_time(uuid.uuid4()) is None
