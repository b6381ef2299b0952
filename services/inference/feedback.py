"""Recording ground truth: one ``feedback`` row per prediction, idempotent."""

from __future__ import annotations

import uuid
from collections.abc import Container

import psycopg

from services.common.features import TARGET_UNIT_USD
from services.inference.errors import Conflict, NotFound

# A request must not wait on a stuck database longer than a client would.
STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '5s'"
RECORDED = "recorded"
ALREADY_RECORDED = "already recorded"


def record_feedback(
    conn: psycopg.Connection, prediction_id: uuid.UUID, actual_usd: float, recent: Container[uuid.UUID]
) -> str:
    """Store the true price of a served prediction; repeating the same POST changes nothing.

    ``recent`` holds ids served by this process that the writer may not have written yet.

    Raises:
        NotFound: no prediction has this id.
        Conflict: a different true price is already recorded for it.
    """
    actual = actual_usd / TARGET_UNIT_USD
    with conn.transaction():
        conn.execute(STATEMENT_TIMEOUT)
        known = (
            prediction_id in recent
            or conn.execute("SELECT 1 FROM predictions WHERE id = %s", (prediction_id,)).fetchone()
        )
        if not known:
            raise NotFound(
                f"prediction_id {prediction_id} is unknown: send an id that POST /predict returned",
                ["prediction_id: must be an id POST /predict returned"],
            )
        inserted = conn.execute(
            "INSERT INTO feedback (prediction_id, actual) VALUES (%s, %s) "
            "ON CONFLICT (prediction_id) DO NOTHING RETURNING prediction_id",
            (prediction_id, actual),
        ).fetchone()
        if inserted:
            return RECORDED
        row = conn.execute(
            "SELECT actual FROM feedback WHERE prediction_id = %s", (prediction_id,)
        ).fetchone()
    stored = float(row[0]) if row else actual
    if abs(stored - actual) > 1e-9 * max(1.0, abs(actual)):
        raise Conflict(
            f"a different true price is already recorded for {prediction_id}: "
            f"{stored * TARGET_UNIT_USD:.2f} USD",
            ["actual_price_usd: one true price per prediction; the first one stands"],
        )
    return ALREADY_RECORDED
