"""The ``drift_reports`` row of a run, and the values its ``status`` and ``action`` take.

status:
- ``ok``: enough rows, no drift, live error within tolerance.
- ``drift``: a feature's PSI reached PSI_THRESHOLD, or Evidently's drifted share reached
  DRIFT_SHARE_THRESHOLD.
- ``degraded``: no drift, but the champion's live MAE is beyond LIVE_MAE_TOLERANCE of its training MAE,
  or the champion was rolled back.
- ``insufficient_data``: fewer than DRIFT_MIN_ROWS predictions in the window, or no champion yet.
- ``error``: the run could not judge (no reference profile, registry down, ...); ``details.error`` says why.

action:
- ``none``: nothing to do (or nothing could be judged).
- ``trainer_launched``: a trainer process or Job was started (``details.launch``).
- ``trainer_already_running``: one was running already; no second one was started.
- ``launch_failed``: starting it failed (RBAC, API unreachable, bad template); ``details.launch`` says why.
- ``rolled_back``: the fresh champion was worse live than its predecessor: champion ← previous.
- ``rollback_failed``: a rollback was due but the registry refused it (``details.rollback``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from services.common.finite import NON_FINITE, finite_document

STATUSES = ("ok", "drift", "degraded", "insufficient_data", "error")
ACTIONS = (
    "none",
    "trainer_launched",
    "trainer_already_running",
    "launch_failed",
    "rolled_back",
    "rollback_failed",
)


def insert_report(
    conn: psycopg.Connection,
    *,
    status: str,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    model_version: int | None = None,
    rows: int = 0,
    labelled_rows: int = 0,
    psi: dict[str, float] | None = None,
    tests: dict[str, Any] | None = None,
    drift_share: float | None = None,
    live_mae: float | None = None,
    reference_mae: float | None = None,
    action: str = "none",
    details: dict[str, Any] | None = None,
) -> int:
    """Insert a report row and return its id (the caller owns the transaction).

    Figures are finite or null: a NaN or infinity (in the float columns too, where Postgres would keep
    it and every threshold query would skip it) goes through the storage guard, noted in ``details``.
    """
    assert status in STATUSES and action in ACTIONS
    figures = finite_document(
        {
            "psi": psi or {},
            "tests": tests or {},
            "drift_share": drift_share,
            "live_mae": live_mae,
            "reference_mae": reference_mae,
            "details": details or {},
        },
        where="drift_reports",
    )
    nulled = figures.pop(NON_FINITE, None)
    stored_details = {**figures["details"], **({NON_FINITE: nulled} if nulled else {})}
    row = conn.execute(
        "INSERT INTO drift_reports (window_start, window_end, model_version, rows, labelled_rows, psi, tests,"
        " drift_share, live_mae, reference_mae, status, action, details)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            window_start,
            window_end,
            model_version,
            rows,
            labelled_rows,
            Jsonb(figures["psi"]),
            Jsonb(figures["tests"]),
            figures["drift_share"],
            figures["live_mae"],
            figures["reference_mae"],
            status,
            action,
            Jsonb(stored_details),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def update_report(
    conn: psycopg.Connection,
    report_id: int,
    *,
    status: str | None = None,
    action: str | None = None,
    alerted: bool | None = None,
    report_path: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Set the outcome of a report row; ``details`` are merged into the stored ones."""
    assert status is None or status in STATUSES
    assert action is None or action in ACTIONS
    cleaned = finite_document(details or {}, where="drift_reports.details")
    nulled = Jsonb(cleaned.pop(NON_FINITE, {}))
    # The guard's notes join those the row has (a plain `||` would replace them).
    conn.execute(
        "UPDATE drift_reports SET status = coalesce(%s, status), action = coalesce(%s, action),"
        " alerted = coalesce(%s, alerted), report_path = coalesce(%s, report_path),"
        " details = details || %s || CASE WHEN %s = '{}'::jsonb THEN '{}'::jsonb"
        " ELSE jsonb_build_object(%s::text, coalesce(details->%s::text, '{}'::jsonb) || %s) END"
        " WHERE id = %s",
        (
            status,
            action,
            alerted,
            report_path,
            Jsonb(cleaned),
            nulled,
            NON_FINITE,
            NON_FINITE,
            nulled,
            report_id,
        ),
    )
