"""Recording a run: the verdict into the summary, Evidently's HTML report, the MLflow run, and the
``drift_reports`` row (stored once, at the end; or an ``error`` row saying why the run failed)."""

from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import redirect_stdout
from typing import Any

import numpy as np
import psycopg
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from services.common.database import connect, first_line
from services.common.vocabulary import RunStatus
from services.monitor.champion import Champion
from services.monitor.decide.verdict import Verdict
from services.monitor.evidently_drift import EvidentlyResult, run_drift_preset
from services.monitor.measure import Window, WindowDrift
from services.monitor.parts import MonitorParts
from services.monitor.report import insert_report
from services.monitor.settings import MonitorSettings
from services.monitor.summary import RunSummary

log = logging.getLogger(__name__)


def error_row(database_url: str, message: str, **figures: Any) -> int | None:
    """Store an `error` report saying why the run failed; never raises (the database may be what failed)."""
    try:
        with connect(database_url) as conn:
            return insert_report(conn, status=RunStatus.ERROR, details={"error": message}, **figures)
    except Exception:  # the database is what failed: the exit code and stderr carry the message
        log.exception("could not store the error report")
        return None


def record_verdict(summary: RunSummary, verdict: Verdict, window: Window) -> None:
    """The verdict's status, triggers and reasons (and the rollback check's) into the summary."""
    summary.status, summary.drift, summary.detail = verdict.status, verdict.drift, verdict.detail
    summary.triggers, summary.plan = list(verdict.triggers), verdict.plan
    summary.details["reasons"] = list(verdict.reasons)
    summary.details["plan"] = verdict.plan
    if window.rollback is not None:
        summary.details["rollback_check"] = {
            **window.rollback.as_dict(),
            "roll_back": verdict.rollback_due,
            "reason": verdict.rollback_reason,
        }


def write_html(
    champion: Champion, drift: WindowDrift, summary: RunSummary, settings: MonitorSettings
) -> None:
    """Evidently's report on the run's sample, as a file under REPORTS_DIR (its path in the summary)."""
    path = settings.reports_folder.resolve() / f"drift-report-{summary.report_id}.html"
    _render_report(champion, drift, summary, settings.drift_share_threshold).save_html(path)
    summary.report_path = str(path)


def _render_report(
    champion: Champion, drift: WindowDrift, summary: RunSummary, share: float
) -> EvidentlyResult:
    """Evidently's report on the run's sample (the same tests: a share it finds otherwise is recorded)."""
    if drift.evidently is not None:
        return drift.evidently
    result = run_drift_preset(
        np.asarray(champion.profile.sample, dtype=np.float64),
        drift.sample,
        drift_share=share,
    )
    if abs(result.drift_share - drift.tests.drift_share) > 1e-9:
        summary.details["evidently_disagrees"] = {
            "run_share": drift.tests.drift_share,
            "evidently_share": result.drift_share,
        }
        log.warning("Evidently's drifted share %s differs from the run's %s", result.drift_share, drift.tests)
    return result


def store_report(
    conn: psycopg.Connection,
    settings: MonitorSettings,
    summary: RunSummary,
    verdict: Verdict,
    window: Window,
) -> None:
    """The run's ``drift_reports`` row, under the id it reserved; the caller commits."""
    drift = window.drift
    insert_report(
        conn,
        report_id=summary.report_id,
        status=summary.status,
        window_start=summary.window_start,
        window_end=summary.window_end,
        model_version=summary.model_version,
        rows=summary.rows,
        labelled_rows=summary.labelled_rows,
        psi=summary.psi,
        tests={
            "psi_threshold": settings.psi_threshold,
            "psi_drifted": list(verdict.psi_drifted),
            "evidently": {k: v.as_dict() for k, v in drift.tests.columns.items()} if drift else {},
            "drift_share_threshold": settings.drift_share_threshold,
        },
        drift_share=summary.drift_share,
        live_mae=summary.live_mae,
        reference_mae=summary.reference_mae,
        estimated_mae=summary.estimated_mae,
        action=summary.action,
        alerted=summary.alerted,
        report_path=summary.report_path,
        details={**summary.details, "triggers": summary.triggers},
    )


def log_to_mlflow(parts: MonitorParts, summary: RunSummary) -> None:
    """A run in the project's experiment with the report's figures and its HTML (its id in the details)."""
    if summary.report_id is None or (
        summary.status == RunStatus.INSUFFICIENT_DATA and not summary.report_path
    ):
        return
    client = parts.client
    try:
        run = client.create_run(
            parts.experiment_id,
            run_name=f"monitor-{summary.report_id}",
            tags={
                "housing.kind": "monitor",
                "housing.drift_report": str(summary.report_id),
                "housing.model_version": str(summary.model_version),
                "housing.status": summary.status,
                "housing.action": summary.action,
            },
        )
        stamp = int(time.time() * 1000)
        values: dict[str, float | None] = {f"psi_{name}": value for name, value in summary.psi.items()}
        values.update(
            {
                "drift_share": summary.drift_share,
                "live_mae": summary.live_mae,
                "reference_mae": summary.reference_mae,
                "estimated_mae": summary.estimated_mae,
                "rows": summary.rows,
                "labelled_rows": summary.labelled_rows,
                "drift_detected": float(summary.drift),
            }
        )
        metrics = [
            Metric(k, float(v), stamp, 0) for k, v in values.items() if v is not None and math.isfinite(v)
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
        if summary.report_path:
            client.log_artifact(run.info.run_id, summary.report_path, artifact_path="monitor")
        # Over HTTP (the cluster's tracking server) MLflow writes the run's URL to stdout here, which
        # would come before `housing monitor --json`'s document: it goes to stderr with the logs.
        with redirect_stdout(sys.stderr):
            client.set_terminated(run.info.run_id)
    except (MlflowException, OSError) as error:
        log.warning("could not log the report to MLflow: %s", first_line(error))
        summary.details["mlflow"] = f"could not log to MLflow: {first_line(error)}"
        return
    summary.details["mlflow_run_id"] = run.info.run_id
