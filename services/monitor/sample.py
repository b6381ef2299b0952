"""A bounded random sample of the window, drawn by Postgres.

Two plans, and the cheaper is used: ``TABLESAMPLE SYSTEM`` reads a fraction of the table's pages
(cost ~ sample x table / window), while ``ORDER BY random() LIMIT`` reads the window through the
``created_at`` index (cost ~ window). Both read only the day partitions of the window, so "table"
is those partitions' rows. When the window is most of them, page sampling reads a few hundred
pages instead of millions of rows.

Each sampled row comes with the price that was served for it and the version that served it: the
label-free estimate averages the error model over (features, served price) without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from services.common.features import FEATURE_COLUMNS
from services.common.partitions import rows_estimate
from services.common.vocabulary import Role

# Draw this many times the rows needed from the sampled pages, then keep a random subset of them.
OVERSAMPLE = 3.0


@dataclass(frozen=True)
class WindowSample:
    """Sampled champion rows: features (schema order), the served price and the serving version."""

    x: npt.NDArray[np.float64]
    predictions: npt.NDArray[np.float64]
    versions: npt.NDArray[np.int64]
    plan: str  # "tablesample" or "window_scan"

    def __len__(self) -> int:
        return len(self.x)

    def served_by(self, version: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(features, served prices) of the rows ``version`` served."""
        mine = self.versions == version
        return self.x[mine], self.predictions[mine]


def _columns() -> sql.Composable:
    return sql.SQL(", ").join(
        [
            *(sql.Identifier(c) for c in FEATURE_COLUMNS),
            sql.Identifier("prediction"),
            sql.Identifier("model_version"),
        ]
    )


def _sample(found: list[tuple[object, ...]], plan: str) -> WindowSample:
    table = np.asarray(found, dtype=np.float64).reshape(-1, len(FEATURE_COLUMNS) + 2)
    features = len(FEATURE_COLUMNS)
    return WindowSample(
        np.ascontiguousarray(table[:, :features]),
        table[:, features],
        table[:, features + 1].astype(np.int64),
        plan,
    )


def sample_window(
    conn: psycopg.Connection, start: datetime, end: datetime, *, rows: int, window_rows: int
) -> WindowSample:
    """Up to ``rows`` random champion predictions from [start, end), and the plan used."""
    # What a page sample reads: the day partitions of the window (a partitioned table has no stats).
    table_rows = rows_estimate(conn, "predictions", start, end)
    percent = 100.0 * min(1.0, OVERSAMPLE * rows / max(window_rows, 1))
    where = sql.SQL("role = {} AND created_at >= %s AND created_at < %s").format(sql.Literal(Role.CHAMPION))
    # A fraction f of the pages yields about f x window rows of the window, and costs f x table rows.
    if table_rows and percent < 100 and percent / 100 * table_rows < window_rows:
        query = sql.SQL(
            "SELECT {} FROM predictions TABLESAMPLE SYSTEM (%s) WHERE {} ORDER BY random() LIMIT %s"
        ).format(_columns(), where)
        found = conn.execute(query, (percent, start, end, rows)).fetchall()
        # Page sampling is random in size; fall back when it came up well short.
        if len(found) >= min(rows, window_rows) // 2:
            return _sample(found, "tablesample")
    query = sql.SQL("SELECT {} FROM predictions WHERE {} ORDER BY random() LIMIT %s").format(
        _columns(), where
    )
    found = conn.execute(query, (start, end, rows)).fetchall()
    return _sample(found, "window_scan")
