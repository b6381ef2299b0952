"""The ``model_events`` table: every lifecycle decision with its reasons and figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from services.common.finite import finite_document
from services.common.vocabulary import ModelEvent


def record_event(
    conn: psycopg.Connection,
    event: ModelEvent,
    version: int,
    *,
    actor: str,
    previous_version: int | None = None,
    reasons: Sequence[str] = (),
    figures: Mapping[str, Any] | None = None,
) -> int:
    """Insert one event row and return its id (the caller owns the transaction).

    ``figures`` hold finite numbers or null (an undefined figure, its reason beside it): Postgres JSON
    has no NaN, and one reaching here would fail the insert and with it the decision it records.
    """
    stored = finite_document(figures or {}, where="model_events.figures")
    row = conn.execute(
        "INSERT INTO model_events (event, model_version, previous_version, actor, reasons, figures)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (str(event), version, previous_version, actor, Jsonb(list(reasons)), Jsonb(stored)),
    ).fetchone()
    assert row is not None
    return int(row[0])
