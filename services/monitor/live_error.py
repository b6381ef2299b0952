"""Live error: a model's MAE on its own served predictions that have feedback, computed in SQL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import psycopg

from services.common.vocabulary import Role


@dataclass(frozen=True)
class LiveError:
    version: int
    rows: int
    mae: float | None


def live_error(conn: psycopg.Connection, version: int, start: datetime | None, end: datetime) -> LiveError:
    """MAE (100k USD) of ``version``'s champion predictions made in [start, end) that have feedback.

    The MAE is None when it is undefined: no such rows, or a logged price that is not finite. The time
    range is stated on both tables so each reads only the day partitions of the window.
    """
    row = conn.execute(
        "SELECT count(*), avg(abs(p.prediction - f.actual)) FROM predictions p"
        " JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = %s AND p.model_version = %s"
        " AND (%s::timestamptz IS NULL OR p.created_at >= %s) AND p.created_at < %s"
        " AND (%s::timestamptz IS NULL OR f.predicted_at >= %s) AND f.predicted_at < %s",
        (Role.CHAMPION, version, start, start, end, start, start, end),
    ).fetchone()
    rows = int(row[0]) if row else 0
    mae = float(row[1]) if row and row[1] is not None else None
    # avg() of no rows is NULL; a NaN logged price would make it NaN: both mean "no live MAE" (None).
    return LiveError(version, rows, mae if mae is not None and math.isfinite(mae) else None)


def degraded(
    live_mae: float | None, reference_mae: float | None, rows: int, *, tolerance: float, min_rows: int
) -> bool:
    """True when enough labelled rows show a live MAE beyond the training MAE by more than ``tolerance``."""
    if live_mae is None or reference_mae is None or rows < min_rows:
        return False
    return live_mae > reference_mae * (1 + tolerance)
