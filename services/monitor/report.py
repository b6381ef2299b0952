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
    """Insert a report row and return its id (the caller owns the transaction)."""
    assert status in STATUSES and action in ACTIONS
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
            Jsonb(psi or {}),
            Jsonb(tests or {}),
            drift_share,
            live_mae,
            reference_mae,
            status,
            action,
            Jsonb(details or {}),
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
    conn.execute(
        "UPDATE drift_reports SET status = coalesce(%s, status), action = coalesce(%s, action),"
        " alerted = coalesce(%s, alerted), report_path = coalesce(%s, report_path),"
        " details = details || %s WHERE id = %s",
        (status, action, alerted, report_path, Jsonb(details or {}), report_id),
    )
