"""Prediction ids: UUIDv7 made by the server, so the log's key grows with time and an id tells its day.

A UUIDv7 starts with the Unix time in milliseconds at which it was made (RFC 9562). The scoring thread
stamps a batch's ``created_at`` and makes its ids right after, on the same clock, so an id's time and
its row's ``created_at`` are within milliseconds of each other. The bound relied on is
:data:`CREATED_AT_SLACK` (5 minutes) either way: far beyond that gap, and beyond the id library's
monotonic counter running ahead of the clock under a burst or a clock step back. A lookup by id
states it (:func:`created_at_bounds`), so Postgres reads one day's partition, two near midnight.

Ids stay opaque strings in the API: nothing outside the server relies on their layout.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from uuid_utils.compat import uuid7

CREATED_AT_SLACK = timedelta(minutes=5)


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` fresh UUIDv7, in increasing order."""
    return [uuid7() for _ in range(count)]


def id_time(prediction_id: uuid.UUID) -> datetime | None:
    """When a UUIDv7 was made (to the millisecond); None for other versions (e.g. old rows' uuid4)."""
    if prediction_id.version != 7:
        return None
    return datetime.fromtimestamp((prediction_id.int >> 80) / 1000, tz=UTC)


def created_at_bounds(prediction_id: uuid.UUID) -> tuple[datetime, datetime] | None:
    """[low, high) holding the ``created_at`` of the prediction with this id; None if it tells no time."""
    made = id_time(prediction_id)
    if made is None:
        return None
    return made - CREATED_AT_SLACK, made + CREATED_AT_SLACK
