"""One monitor run: lock, measure, decide, act, record. The thin orchestration of the stages:

- ``champion``: read the champion, its reference profile and error model from the registry;
- ``measure``: the window's figures (PSI from SQL histograms, drift tests, live and estimated error,
  the rollback check's figures) into ``Measured``;
- ``decide.verdict.judge``: the verdict, a pure function of those figures and the limits;
- ``act``: launch the trainer or roll back, and alert once per episode;
- ``record``: Evidently's HTML report, the MLflow run and the ``drift_reports`` row (stored once).

Everything here takes its parts as arguments (settings, database URL, MLflow client, launcher,
alert channels); only the CLI reads the environment and builds them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import psycopg

from services.common.database import DatabaseUnavailable, connect, first_line
from services.common.partitions import log_partitions_end
from services.common.vocabulary import Action, Plan, RunStatus
from services.monitor.act import act, alert, launch, open_launcher
from services.monitor.champion import ArtifactRefused, Champion, ChampionUnreadable, read_champion
from services.monitor.decide.first_model import first_model
from services.monitor.decide.rule import Limits
from services.monitor.decide.verdict import judge
from services.monitor.lock import monitor_lock
from services.monitor.measure import measure, window_start
from services.monitor.metrics import push_metrics
from services.monitor.parts import RUN_STAGES, MonitorParts
from services.monitor.record import error_row, log_to_mlflow, record_verdict, store_report, write_html
from services.monitor.report import insert_report, last_logged_to_mlflow, mlflow_due, reserve_report_id
from services.monitor.summary import MonitorFailed, RunSummary, timed

__all__ = ["RUN_STAGES", "MonitorFailed", "MonitorParts", "RunSummary", "error_row", "run_monitor"]

log = logging.getLogger(__name__)


def run_monitor(parts: MonitorParts) -> RunSummary:
    """One monitor run. Raises MonitorFailed only when the run could not do its job."""
    started = time.perf_counter()
    with monitor_lock(parts.database_url) as held:
        if not held:
            parts.stages.say("another monitor run holds the lock: nothing to do")
            return RunSummary(RunStatus.LOCKED, detail="another monitor run holds the lock")
        try:
            summary = _locked_run(parts)
        except ArtifactRefused as error:
            if not error.reported:  # a refused rollback target: the run's row says so, as for the champion
                error_row(parts.database_url, str(error), model_version=error.version)
            raise
        except MonitorFailed:
            raise
        except Exception as error:
            message = f"{type(error).__name__}: {first_line(error)}"
            log.exception("monitor run failed")
            error_row(parts.database_url, message)
            raise MonitorFailed(f"the monitor run failed ({message})") from error
    summary.duration_seconds = time.perf_counter() - started
    _push_metrics(parts, summary)
    log.info(
        "monitor: status=%s rows=%d psi=%s drift_share=%s live_mae=%s estimated_mae=%s action=%s alerted=%s",
        summary.status,
        summary.rows,
        summary.psi,
        summary.drift_share,
        summary.live_mae,
        summary.estimated_mae,
        summary.action,
        summary.alerted,
    )
    return summary


def _push_metrics(parts: MonitorParts, summary: RunSummary) -> None:
    """The run's figures to the Pushgateway, when one is configured (a failure is noted, not raised)."""
    if not parts.settings.pushgateway_url:
        return
    problem = push_metrics(
        parts.settings.pushgateway_url,
        psi=summary.psi,
        drift_share=summary.drift_share,
        drift_detected=summary.drift,
        live_mae=summary.live_mae,
        reference_mae=summary.reference_mae,
        estimated_mae=summary.estimated_mae,
        estimated_mae_se=summary.estimate_se,
        partitions_end=_partitions_end(parts),
        trainer_failed=summary.trainer.failed if summary.trainer else None,
        trainers_stalled=len(summary.stalled) if summary.trainer_checked else None,
        champion_version=summary.model_version or 0,  # a run without one trains v1 (decide.first_model)
        finished_at=time.time(),
        duration_seconds=summary.duration_seconds,
        grouping_key={
            "namespace": parts.settings.housing_namespace,
            "release": parts.settings.housing_release,
        },
        timeout=parts.settings.alert_timeout_seconds,
    )
    if problem:
        summary.details["metrics"] = problem


def _partitions_end(parts: MonitorParts) -> float | None:
    """When the log's day partitions run out (a catalogue read, ~ms); None when it cannot be read."""
    try:
        with connect(parts.database_url) as conn:
            end = log_partitions_end(conn)
    except (DatabaseUnavailable, psycopg.Error) as error:
        log.warning("could not read the prediction log's partitions: %s", first_line(error))
        return None
    return None if end is None else end.timestamp()


def _champion(parts: MonitorParts) -> Champion | None:
    """The champion (None: none yet); an unreadable one leaves an ``error`` row and fails the run."""
    try:
        return read_champion(parts.client, parts.trusted)
    except ChampionUnreadable as error:
        error_row(parts.database_url, str(error), model_version=error.version)
        error.reported = True
        raise


def last_first_model_launch(conn: psycopg.Connection) -> datetime | None:
    """When a run without a champion last launched the trainer (None: never): the retry clock."""
    row = conn.execute(
        "SELECT max(created_at) FROM drift_reports WHERE model_version IS NULL AND action = %s",
        (Action.TRAINER_LAUNCHED,),
    ).fetchone()
    return row[0] if row else None


def _first_model_run(parts: MonitorParts) -> RunSummary:
    """No champion yet: launch the trainer for v1 (``decide.first_model``), alert a failed one, and
    store the run's row. The window is not measured: there is no model to measure it against."""
    settings, stages = parts.settings, parts.stages
    summary = RunSummary(RunStatus.INSUFFICIENT_DATA)
    launcher = open_launcher(parts, summary)
    with connect(parts.database_url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        last = last_first_model_launch(conn)
        decision = first_model(
            None if last is None else now - last,
            summary.trainer,
            timedelta(minutes=settings.alert_cooldown_minutes),
        )
        summary.plan, summary.detail = decision.plan, decision.reason
        summary.report_id = reserve_report_id(conn)
        conn.commit()
        with stages.stage("acting"):
            if decision.plan is Plan.LAUNCH_TRAINER:
                launch(launcher, summary)
                summary.detail = f"{decision.reason} ({summary.detail})"
            stages.say(summary.detail, end=" ")
        with stages.stage("alerting"):
            alert(parts, conn, summary, now, None)
            stages.say("alert sent" if summary.alerted else "no alert", end=" ")
        summary.details["reason"] = summary.detail
        insert_report(
            conn,
            status=summary.status,
            report_id=summary.report_id,
            action=summary.action,
            alerted=summary.alerted,
            details=summary.details,
        )
        conn.commit()
    return summary


def _locked_run(parts: MonitorParts) -> RunSummary:
    """Measure, judge, act, alert; then store the report row once and log the run to MLflow."""
    settings, stages = parts.settings, parts.stages
    timings: dict[str, float] = {}
    with stages.stage("reading the champion and its reference profile"), timed(timings, "reference"):
        champion = _champion(parts)
        stages.say(f"v{champion.version}" if champion else "none yet", end=" ")
    if champion is None:
        return _first_model_run(parts)

    with connect(parts.database_url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        summary = RunSummary(
            RunStatus.OK,
            model_version=champion.version,
            window_start=window_start(conn, settings.drift_window_hours, champion.version, now),
            window_end=now,
            reference_mae=champion.reference_mae,
        )
        summary.details["timings"] = timings
        launcher = open_launcher(parts, summary)
        window = measure(parts, conn, champion, summary, timings)
        verdict = judge(window.measured, Limits.of(settings))
        record_verdict(summary, verdict, window)
        summary.report_id = reserve_report_id(conn)
        conn.commit()

        with stages.stage("acting"), timed(timings, "act"):
            act(parts, launcher, summary, verdict, window.rollback)
            stages.say(summary.action, end=" ")

        # Evidently's HTML report goes with a report logged to MLflow: a run that finds nothing, and
        # logged one within REPORT_EVERY_HOURS, neither imports Evidently (~3.4 s) nor renders (~0.8 s).
        due = mlflow_due(
            summary.status, summary.action, last_logged_to_mlflow(conn), now, settings.report_every_hours
        )
        with stages.stage("writing the Evidently report"), timed(timings, "html"):
            if due and window.drift is not None:
                write_html(champion, window.drift, summary, settings)
                stages.say(str(summary.report_path), end=" ")
            else:
                stages.say("not due" if window.drift is not None else "skipped: too few rows", end=" ")

        with stages.stage("alerting"), timed(timings, "alert"):
            alert(parts, conn, summary, now, verdict)
            stages.say("alert sent" if summary.alerted else "no alert", end=" ")

        with timed(timings, "mlflow"):
            if due:
                log_to_mlflow(parts, summary)
            elif window.drift is not None:
                summary.details["mlflow"] = (
                    "nothing found: no Evidently report this run; one is rendered and logged to MLflow "
                    f"on every finding and at least every {settings.report_every_hours:g} h"
                )
        store_report(conn, settings, summary, verdict, window)
        conn.commit()
    return summary
