"""The estimate set beside the truth: realized ÷ estimated MAE on the window's labelled rows.

The error model assumes covariate shift: the same features still mean the same prices. Where the
window has labels, the champion's realized MAE and its label-free estimate are taken on the *same*
rows (up to ``LABELLED_SAMPLE_ROWS`` labelled champion predictions, drawn at random in SQL) and their
ratio tells whether that assumption holds: prices that moved with unchanged features (a concept shift)
raise the realized error and leave the estimate where it was. The decision is
``services/monitor/decide/estimate.py``; this module measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from services.common.error_model import ErrorEstimator
from services.common.features import FEATURE_COLUMNS
from services.common.vocabulary import Role

# The ratio's SE at 5,000 rows is ~1%: more rows would refine a figure already finer than [0.9, 1.1].
LABELLED_SAMPLE_ROWS = 5000


@dataclass(frozen=True)
class ConceptFigures:
    """Realized and estimated MAE of the champion on the same labelled rows of the window."""

    rows: int
    realized_mae: float
    estimated_mae: float
    ratio: float  # realized ÷ estimated
    ratio_se: float  # its standard error (delta method over the rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "realized_mae": self.realized_mae,
            "estimated_mae": self.estimated_mae,
            "realized_to_estimated": self.ratio,
            "ratio_se": self.ratio_se,
        }


def standard_error(row_errors: npt.NDArray[np.float64]) -> float | None:
    """The estimate's standard error on these rows: SD of the per-row estimated errors / √n."""
    if len(row_errors) < 2:
        return None
    value = float(np.std(row_errors, ddof=1) / math.sqrt(len(row_errors)))
    return value if math.isfinite(value) else None


def concept_figures(
    estimated_errors: npt.NDArray[np.float64], absolute_errors: npt.NDArray[np.float64]
) -> ConceptFigures | None:
    """Realized ÷ estimated on paired rows, with its SE: SD(|e| - ratio·ê) / (√n · mean ê).

    None with fewer than 2 rows, an estimate of zero, or a figure that is not finite (a logged price).
    """
    estimated = np.asarray(estimated_errors, dtype=np.float64)
    realized = np.asarray(absolute_errors, dtype=np.float64)
    rows = len(estimated)
    if rows < 2 or rows != len(realized):
        return None
    estimated_mae, realized_mae = float(estimated.mean()), float(realized.mean())
    if not (math.isfinite(estimated_mae) and math.isfinite(realized_mae)) or estimated_mae <= 0:
        return None
    ratio = realized_mae / estimated_mae
    ratio_se = float(np.std(realized - ratio * estimated, ddof=1) / (math.sqrt(rows) * estimated_mae))
    return ConceptFigures(rows, realized_mae, estimated_mae, ratio, ratio_se)


def labelled_rows(
    conn: psycopg.Connection,
    version: int,
    start: datetime,
    end: datetime,
    *,
    rows: int = LABELLED_SAMPLE_ROWS,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(features, served price, true price) of up to ``rows`` random labelled predictions ``version``
    served as champion in [start, end). The time range is stated on both tables so each reads only the
    day partitions of the window."""
    columns = sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(c)) for c in FEATURE_COLUMNS)
    query = sql.SQL(
        "SELECT {}, p.prediction, f.actual FROM predictions p"
        " JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = %s AND p.model_version = %s AND p.created_at >= %s AND p.created_at < %s"
        " AND f.predicted_at >= %s AND f.predicted_at < %s ORDER BY random() LIMIT %s"
    ).format(columns)
    found = conn.execute(query, (Role.CHAMPION, version, start, end, start, end, rows)).fetchall()
    table = np.asarray(found, dtype=np.float64).reshape(-1, len(FEATURE_COLUMNS) + 2)
    features = len(FEATURE_COLUMNS)
    return np.ascontiguousarray(table[:, :features]), table[:, features], table[:, features + 1]


def measure_concept(
    conn: psycopg.Connection, version: int, error_model: ErrorEstimator, start: datetime, end: datetime
) -> ConceptFigures | None:
    """Realized beside estimated on the window's labelled rows; None without any (or a figure undefined)."""
    x, served, actual = labelled_rows(conn, version, start, end)
    if len(x) == 0:
        return None
    return concept_figures(error_model.row_errors(x, served), np.abs(served - actual))
