"""Logged predictions for the monitor's tests and benchmark: real rows of the data set, written by Postgres.

``generate_predictions`` writes millions of rows with ``generate_series`` (the data set goes up once,
into a temporary table); ``insert_predictions`` writes a few thousand given rows with COPY.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from services.common.features import FEATURE_COLUMNS
from services.common.vocabulary import Role

# The covariate shift of the scale benchmark: every district's median income up by half.
MEDINC_SHIFT = 1.5


def insert_predictions(
    conn: psycopg.Connection,
    x: npt.NDArray[np.float64],
    *,
    start: datetime,
    spacing: timedelta,
    model_version: int = 1,
    role: Role = Role.CHAMPION,
    predictions: Sequence[float] | npt.NDArray[np.float64] | None = None,
    actual: Sequence[float] | npt.NDArray[np.float64] | None = None,
) -> list[uuid.UUID]:
    """COPY a prediction per row of ``x`` ``spacing`` apart from ``start``; feedback if given."""
    ids = [uuid.uuid4() for _ in range(len(x))]
    guesses = np.zeros(len(x)) if predictions is None else np.asarray(predictions, dtype=np.float64)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in FEATURE_COLUMNS)
    copy = sql.SQL(
        "COPY predictions (id, created_at, model_version, role, {}, prediction, latency_ms) FROM STDIN"
    ).format(columns)
    with conn.cursor() as cursor, cursor.copy(copy) as writer:
        for index, row in enumerate(x.tolist()):
            at = start + spacing * index
            writer.write_row((ids[index], at, model_version, role, *row, float(guesses[index]), 1.0))
    if actual is not None:
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY feedback (prediction_id, predicted_at, actual) FROM STDIN") as writer,
        ):
            values = np.asarray(actual, dtype=np.float64).tolist()
            for index, (prediction_id, value) in enumerate(zip(ids, values, strict=True)):
                writer.write_row((prediction_id, start + spacing * index, value))
    return ids


def load_source_rows(
    conn: psycopg.Connection, source: npt.NDArray[np.float64], prices: npt.NDArray[np.float64] | None = None
) -> None:
    """``source`` (rows of features in schema order) as the temporary table
    ``source_rows(i, ..., prediction)``,
    numbered from 0, for INSERT ... SELECT statements that cycle through it; ``prediction`` is the
    row's price in ``prices`` (what a champion served for it), 2.0 without them."""
    conn.execute("DROP TABLE IF EXISTS pg_temp.source_rows")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in FEATURE_COLUMNS)
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE source_rows (i integer PRIMARY KEY, {}, prediction float8)").format(
            sql.SQL(", ").join(sql.SQL("{} float8").format(sql.Identifier(c)) for c in FEATURE_COLUMNS)
        )
    )
    served = [2.0] * len(source) if prices is None else np.asarray(prices, dtype=np.float64).tolist()
    with (
        conn.cursor() as cursor,
        cursor.copy(sql.SQL("COPY source_rows (i, {}, prediction) FROM STDIN").format(columns)) as writer,
    ):
        for index, (row, price) in enumerate(zip(source.tolist(), served, strict=True)):
            writer.write_row((index, *row, price))


def generate_predictions(
    conn: psycopg.Connection,
    source: npt.NDArray[np.float64],
    rows: int,
    *,
    start: datetime,
    end: datetime,
    shift: bool = False,
    model_version: int = 1,
) -> None:
    """Write ``rows`` champion predictions evenly spread over [start, end), cycling through ``source``.

    With ``shift`` the median income of every row is multiplied by ``MEDINC_SHIFT``.
    """
    load_source_rows(conn, source)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in FEATURE_COLUMNS)
    values = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in FEATURE_COLUMNS]
    if shift:
        values[0] = sql.SQL("s.med_inc * {}").format(sql.Literal(MEDINC_SHIFT))
    conn.execute(
        sql.SQL(
            "INSERT INTO predictions (id, created_at, model_version, role, {columns}, prediction, latency_ms)"
            " SELECT gen_random_uuid(), %s + (%s::interval * ((g - 1)::float8 / %s)), %s, {role},"
            " {values},"
            " 2.0, 1.0 FROM generate_series(1, %s) AS g JOIN source_rows s ON s.i = (g - 1) %% %s"
        ).format(columns=columns, values=sql.SQL(", ").join(values), role=sql.Literal(Role.CHAMPION)),
        (start, end - start, rows, model_version, rows, len(source)),
    )
