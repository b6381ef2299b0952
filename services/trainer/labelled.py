"""Labelled production rows: predictions joined with their ground truth, split by time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from services.common.features import FEATURE_COLUMNS
from services.common.vocabulary import Role


@dataclass(frozen=True)
class LabelledRows:
    """Features (schema order), true prices (100k USD) and the time each prediction was made, oldest first."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    at: list[datetime]

    def __len__(self) -> int:
        return len(self.y)

    def split(self, recent_fraction: float) -> tuple[LabelledRows, LabelledRows]:
        """(older rows to train on, newest rows kept for the gate)."""
        cut = len(self) - round(len(self) * recent_fraction)
        return self.take(slice(0, cut)), self.take(slice(cut, None))

    def until(self, moment: datetime) -> LabelledRows:
        """The rows made at or before ``moment``."""
        return self.take(slice(0, sum(1 for at in self.at if at <= moment)))

    def take(self, part: slice) -> LabelledRows:
        return LabelledRows(self.x[part], self.y[part], self.at[part])


def empty() -> LabelledRows:
    return LabelledRows(np.empty((0, len(FEATURE_COLUMNS))), np.empty(0), [])


def fetch_labelled(conn: psycopg.Connection, since: datetime, after: datetime | None = None) -> LabelledRows:
    """Champion predictions made since ``since`` (and strictly after ``after``) that have feedback.

    The time range is stated on both tables (feedback is partitioned by its prediction's time), so
    each reads only the day partitions since ``since``.
    """
    query = sql.SQL(
        "SELECT {columns}, f.actual, p.created_at FROM predictions p"
        " JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = %s AND p.created_at >= %s AND (%s::timestamptz IS NULL OR p.created_at > %s)"
        " AND f.predicted_at >= %s AND (%s::timestamptz IS NULL OR f.predicted_at > %s)"
        " ORDER BY p.created_at, p.id"
    ).format(columns=sql.SQL(", ").join(sql.Identifier("p", column) for column in FEATURE_COLUMNS))
    rows = conn.execute(query, (Role.CHAMPION, since, after, after, since, after, after)).fetchall()
    if not rows:
        return empty()
    width = len(FEATURE_COLUMNS)
    matrix = np.array([row[: width + 1] for row in rows], dtype=np.float64)
    return LabelledRows(matrix[:, :width], matrix[:, width], [row[width + 1] for row in rows])
