"""Automatic rollback: is the freshly promoted champion worse live than the version it replaced?

Both are judged on the same rows: the champion's labelled predictions since its promotion (its logged
prices against the true ones) and the predecessor's prices for those same features, scored now. The
traffic before a promotion is no yardstick: a champion promoted because the world moved would
otherwise be compared with its predecessor's error on the old world.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from services.common.features import FEATURE_COLUMNS
from services.common.vocabulary import ModelEvent, Role
from services.monitor.live_error import LiveError

# Rows a check scores at most (the newest): enough for a stable MAE, bounded in memory and time.
MAX_ROWS = 50_000

Predictor = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class Promotion:
    version: int
    previous: int | None
    event: ModelEvent
    at: datetime


@dataclass(frozen=True)
class RollbackFigures:
    """What the check measured; whether to roll back is the verdict's (``decide_rollback``)."""

    promotion: Promotion
    champion: LiveError
    previous: LiveError

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion.version,
            "previous": self.previous.version,
            "promoted_at": self.promotion.at.isoformat(),
            "champion_live_mae": self.champion.mae,
            "champion_rows": self.champion.rows,
            "previous_live_mae": self.previous.mae,
            "previous_rows": self.previous.rows,
        }


def last_promotion(conn: psycopg.Connection, version: int) -> Promotion | None:
    """The event that made ``version`` champion most recently (promoted, forced or rolled_back)."""
    row = conn.execute(
        "SELECT model_version, previous_version, event, created_at FROM model_events"
        " WHERE event IN (%s, %s, %s) AND model_version = %s"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        (ModelEvent.PROMOTED, ModelEvent.FORCED, ModelEvent.ROLLED_BACK, version),
    ).fetchone()
    return Promotion(int(row[0]), row[1], ModelEvent(row[2]), row[3]) if row else None


def decide_rollback(
    champion: LiveError, previous: LiveError, *, tolerance: float, min_rows: int
) -> tuple[bool, str]:
    """A pure decision: roll back when both have ``min_rows`` labelled rows and the champion is worse."""
    if champion.rows < min_rows:
        return False, f"v{champion.version} has {champion.rows} labelled predictions (needs {min_rows})"
    if champion.mae is None:
        return False, f"the live MAE of v{champion.version} is undefined (a logged price is not finite)"
    if previous.rows < min_rows:
        return False, f"v{previous.version} had {previous.rows} labelled predictions (needs {min_rows})"
    if previous.mae is None:
        return False, f"the MAE of v{previous.version} on those rows is undefined (its prices are not finite)"
    limit = previous.mae * (1 + tolerance)
    if champion.mae > limit:
        return True, (
            f"live MAE of v{champion.version} is {champion.mae:.3f} on {champion.rows} rows, worse than "
            f"v{previous.version}'s {previous.mae:.3f} on {previous.rows} rows by more than {tolerance:.0%}"
        )
    return (
        False,
        f"live MAE of v{champion.version} {champion.mae:.3f} is within {tolerance:.0%} of {previous.mae:.3f}",
    )


def _labelled_since(
    conn: psycopg.Connection, version: int, start: datetime, end: datetime
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(features, logged prices, true prices) of ``version``'s newest labelled predictions in [start, end)."""
    query = sql.SQL(
        "SELECT {columns}, p.prediction, f.actual"
        " FROM predictions p JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = {role} AND p.model_version = %s AND p.created_at >= %s AND p.created_at < %s"
        " AND f.predicted_at >= %s AND f.predicted_at < %s"
        " ORDER BY p.created_at DESC LIMIT %s"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("p", column) for column in FEATURE_COLUMNS),
        role=sql.Literal(Role.CHAMPION),
    )
    rows = conn.execute(query, (version, start, end, start, end, MAX_ROWS)).fetchall()
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_COLUMNS) + 2)
    width = len(FEATURE_COLUMNS)
    return matrix[:, :width], matrix[:, width], matrix[:, width + 1]


def _mae(predicted: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float | None:
    """The MAE, or None when it is undefined: no rows, or a price that is not finite."""
    mae = float(np.mean(np.abs(predicted - actual))) if len(actual) else None
    return mae if mae is not None and math.isfinite(mae) else None


def check_rollback(
    conn: psycopg.Connection,
    champion: int,
    previous_alias: int | None,
    *,
    now: datetime,
    predictor: Callable[[int], Predictor],
    min_rows: int,
) -> RollbackFigures | None:
    """The rollback figures of a champion promoted over another version; None when there is nothing to check.

    A champion restored by a rollback is not checked (it was the good one), nor one whose predecessor
    is no longer the ``previous`` alias (a rollback would restore something else).
    """
    promotion = last_promotion(conn, champion)
    if promotion is None or promotion.event == ModelEvent.ROLLED_BACK or promotion.previous is None:
        return None
    if previous_alias != promotion.previous:
        return None
    x, logged, actual = _labelled_since(conn, champion, promotion.at, now)
    current = LiveError(champion, len(actual), _mae(logged, actual))
    before = LiveError(promotion.previous, 0, None)
    if len(actual) >= min_rows:  # load the predecessor only when the check can decide
        before = LiveError(promotion.previous, len(actual), _mae(predictor(promotion.previous)(x), actual))
    return RollbackFigures(promotion, current, before)
