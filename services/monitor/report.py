"""The ``drift_reports`` row of a run: stored once, when the run has judged, acted and alerted.

The values of ``status`` and ``action`` are ``RunStatus`` and ``Action`` (services/common/vocabulary.py).
status:
- ``ok``: enough rows, no drift, live error within tolerance.
- ``drift``: a feature's PSI reached PSI_THRESHOLD, or Evidently's drifted share reached
  DRIFT_SHARE_THRESHOLD.
- ``degraded``: no drift, but the champion's live MAE is beyond LIVE_MAE_TOLERANCE of its training MAE,
  or its label-free estimate above the band registered with it (``details.estimate.band``; a version
  without one: beyond ESTIMATED_MAE_TOLERANCE), or the champion is worse live than its predecessor (a
  rollback was due), or, before enough labels, estimated worse than it. A concept shift
  (``details.concept``: realized ÷ estimated on the window's labelled rows) is a trigger, not a status.
- ``insufficient_data``: fewer than DRIFT_MIN_ROWS predictions in the window, or no champion yet.
- ``error``: the run could not judge (no reference profile, registry down, ...); ``details.error`` says why.

action:
- ``none``: nothing to do (or nothing could be judged).
- ``trainer_launched``: a trainer process or Job was started (``details.launch``).
- ``trainer_already_running``: one was running already; no second one was started.
- ``launch_failed``: starting it failed (RBAC, API unreachable, bad template); ``details.launch`` says why.
- ``rolled_back``: the rollback test found the fresh champion worse live than the model before its
  episode: champion ← that model (``details.rollback``: restored, retired, reason, cooldown_labels).
- ``rollback_failed``: a rollback was due but the registry refused it (``details.rollback``).

A run reserves its row's id first (the trainer Job and the rollback event name the report that caused
them) and inserts the row with that id at its end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from services.common.finite import NON_FINITE, finite_document
from services.common.vocabulary import Action, RunStatus

STORED_STATUSES = frozenset(RunStatus) - {RunStatus.LOCKED}  # a locked run stores nothing


def last_logged_to_mlflow(conn: psycopg.Connection) -> datetime | None:
    """When the newest report that was logged to MLflow was made (None: never)."""
    row = conn.execute("SELECT max(created_at) FROM drift_reports WHERE details ? 'mlflow_run_id'").fetchone()
    return row[0] if row else None


def mlflow_due(status: str, action: str, last: datetime | None, now: datetime, every_hours: float) -> bool:
    """Whether a run's report goes to MLflow: it found something, or the last logged one is old enough.

    A monitor run every 10 minutes that logged each ~4 MB HTML report would fill the registry's store
    with hundreds of MB a day of reports that say "ok". A due report is also the only one rendered (as a
    file under REPORTS_DIR): Evidently's import alone costs ~3.4 s, more than a whole run's budget; a
    run that finds nothing keeps its figures in ``drift_reports`` and its ``--json`` summary.
    """
    found = status in (RunStatus.DRIFT, RunStatus.DEGRADED)
    if found or action in (Action.ROLLED_BACK, Action.ROLLBACK_FAILED):
        return True
    return last is None or (now - last).total_seconds() >= every_hours * 3600


def reserve_report_id(conn: psycopg.Connection) -> int:
    """An id for a report row inserted later in the run (``insert_report(report_id=...)``)."""
    row = conn.execute("SELECT nextval(pg_get_serial_sequence('drift_reports', 'id'))").fetchone()
    assert row is not None
    return int(row[0])


# The id reserved by reserve_report_id when the run has one (coalesce), else the sequence's next.
_INSERT_REPORT = (
    "INSERT INTO drift_reports (id, window_start, window_end, model_version, rows, labelled_rows, psi,"
    " tests, drift_share, live_mae, reference_mae, estimated_mae, status, action, alerted, report_path,"
    " details)"
    " VALUES (coalesce(%s::bigint, nextval(pg_get_serial_sequence('drift_reports', 'id'))),"
    " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def insert_report(
    conn: psycopg.Connection,
    *,
    status: RunStatus,
    report_id: int | None = None,
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
    estimated_mae: float | None = None,
    action: Action = Action.NONE,
    alerted: bool = False,
    report_path: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Insert a report row (with ``report_id`` when reserved) and return its id; the caller commits.

    Figures are finite or null: a NaN or infinity (in the float columns too, where Postgres would keep
    it and every threshold query would skip it) goes through the storage guard, noted in ``details``.
    """
    assert status in STORED_STATUSES and action in set(Action)
    figures = _finite_figures(
        psi=psi,
        tests=tests,
        drift_share=drift_share,
        live_mae=live_mae,
        reference_mae=reference_mae,
        estimated_mae=estimated_mae,
        details=details,
    )
    row = conn.execute(
        _INSERT_REPORT,
        (
            report_id,
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
            figures["estimated_mae"],
            str(status),
            str(action),
            alerted,
            report_path,
            Jsonb(figures["details"]),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _finite_figures(
    *,
    psi: dict[str, float] | None,
    tests: dict[str, Any] | None,
    drift_share: float | None,
    live_mae: float | None,
    reference_mae: float | None,
    estimated_mae: float | None,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    """The row's figures through the storage guard, by column: finite or null, and ``details`` noting
    what was nulled (under NON_FINITE) when anything was."""
    figures = finite_document(
        {
            "psi": psi or {},
            "tests": tests or {},
            "drift_share": drift_share,
            "live_mae": live_mae,
            "reference_mae": reference_mae,
            "estimated_mae": estimated_mae,
            "details": details or {},
        },
        where="drift_reports",
    )
    nulled = figures.pop(NON_FINITE, None)
    figures["details"] = {**figures["details"], **({NON_FINITE: nulled} if nulled else {})}
    return figures
