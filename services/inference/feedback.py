"""Recording ground truth: one ``feedback`` row per prediction, idempotent."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

import psycopg

from services.common.features import TARGET_UNIT_USD
from services.inference.errors import Conflict, NotFound
from services.inference.ids import created_at_bounds

# A request must not wait on a stuck database longer than a client would.
STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '5s'"
RECORDED = "recorded"
ALREADY_RECORDED = "already recorded"


def predicted_at(conn: psycopg.Connection, prediction_id: uuid.UUID) -> datetime | None:
    """When the prediction ``prediction_id`` was made, from ``predictions``; None when it is unknown.

    A UUIDv7 bounds its row's ``created_at`` (:func:`~services.inference.ids.created_at_bounds`), so
    the lookup reads one day's partition (two near midnight). Ids without a time (the uuid4 of rows
    logged before UUIDv7) are looked up in every partition's primary key.
    """
    bounds = created_at_bounds(prediction_id)
    if bounds is None:
        row = conn.execute(
            "SELECT created_at FROM predictions WHERE id = %s LIMIT 1", (prediction_id,)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT created_at FROM predictions"
            " WHERE id = %s AND created_at >= %s AND created_at < %s LIMIT 1",
            (prediction_id, *bounds),
        ).fetchone()
    return row[0] if row else None


def record_feedback(
    conn: psycopg.Connection,
    prediction_id: uuid.UUID,
    actual_usd: float,
    recent: Mapping[uuid.UUID, datetime],
) -> str:
    """Store the true price of a served prediction; repeating the same POST changes nothing.

    ``recent`` maps ids served by this process, which the writer may not have written yet, to their
    ``created_at``. The truth is filed under its prediction's ``created_at`` (``feedback.predicted_at``,
    the partition key), so it lives, joins and is dropped with the prediction's day.

    Raises:
        NotFound: no prediction has this id.
        Conflict: a different true price is already recorded for it.
    """
    actual = actual_usd / TARGET_UNIT_USD
    with conn.transaction():
        conn.execute(STATEMENT_TIMEOUT)
        made = recent.get(prediction_id) or predicted_at(conn, prediction_id)
        if made is None:
            raise NotFound(
                f"prediction_id {prediction_id} is unknown: send an id that POST /predict returned",
                ["prediction_id: must be an id POST /predict returned"],
            )
        inserted = conn.execute(
            "INSERT INTO feedback (prediction_id, predicted_at, actual) VALUES (%s, %s, %s) "
            "ON CONFLICT (prediction_id, predicted_at) DO NOTHING RETURNING prediction_id",
            (prediction_id, made, actual),
        ).fetchone()
        if inserted:
            return RECORDED
        row = conn.execute(
            "SELECT actual FROM feedback WHERE prediction_id = %s AND predicted_at = %s",
            (prediction_id, made),
        ).fetchone()
    stored = float(row[0]) if row else actual
    if abs(stored - actual) > 1e-9 * max(1.0, abs(actual)):
        raise Conflict(
            f"a different true price is already recorded for {prediction_id}: "
            f"{stored * TARGET_UNIT_USD:.2f} USD",
            ["actual_price_usd: one true price per prediction; the first one stands"],
        )
    return ALREADY_RECORDED
