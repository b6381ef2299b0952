"""Acting on a verdict: launching the trainer, rolling back, and alerting once per episode.

``summary.action`` says how an act went; nothing here decides what to do (that is ``decide``).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import psycopg
from mlflow.exceptions import MlflowException

from services.common.database import first_line
from services.common.registry import RegistryError
from services.common.rollback import roll_back
from services.common.vocabulary import Action, AlertKind, Plan, RunStatus
from services.monitor.alerts import Alert, deliver, mark_alerted, observe
from services.monitor.decide.verdict import Verdict
from services.monitor.launchers import Launcher, LaunchResult
from services.monitor.parts import MonitorParts
from services.monitor.rollback_check import RollbackFigures
from services.monitor.settings import MonitorSettings
from services.monitor.summary import RunSummary

ACTOR = "housing monitor"


def open_launcher(parts: MonitorParts, summary: RunSummary) -> Launcher | str:
    """The launcher, having recorded how the newest finished trainer ended; or why there is none."""
    try:
        launcher = parts.launcher()
    except Exception as error:  # a bad template or Kubernetes config: the launch fails, the run does not
        return f"cannot start the trainer: {first_line(error)}"
    try:
        summary.trainer = launcher.last_finished()
        summary.stalled = launcher.stalled()
    except Exception as error:
        summary.details["trainer"] = {"error": f"cannot see the last trainer: {first_line(error)}"}
        return launcher
    summary.trainer_checked = True
    summary.details["trainer"] = summary.trainer.as_dict() if summary.trainer else None
    if summary.stalled:
        summary.details["stalled_trainers"] = [stalled.as_dict() for stalled in summary.stalled]
    return launcher


def act(
    parts: MonitorParts,
    launcher: Launcher | str,
    summary: RunSummary,
    verdict: Verdict,
    rollback: RollbackFigures | None,
) -> None:
    """Carry out the verdict's plan; ``summary.action`` says how it went."""
    if verdict.plan is Plan.ROLL_BACK:
        assert rollback is not None and verdict.rollback_reason is not None
        _roll_back(parts, summary, verdict.rollback_reason, rollback)
        return
    if verdict.plan is Plan.LAUNCH_TRAINER:
        launch(launcher, summary)


def launch(launcher: Launcher | str, summary: RunSummary) -> None:
    """Start the trainer for this run's report; ``summary.action`` and ``details.launch`` say how."""
    if isinstance(launcher, str):
        result = LaunchResult(Action.LAUNCH_FAILED, launcher)
    else:
        result = launcher.launch(summary.report_id or 0)
    summary.action = result.action
    summary.detail = result.detail
    summary.details["launch"] = {"detail": result.detail, **result.info}


def _roll_back(parts: MonitorParts, summary: RunSummary, reason: str, rollback: RollbackFigures) -> None:
    """champion ← the model before the episode, with the test's figures and the cool-down on the event;
    ``summary`` says how it went."""
    try:
        bad, good = roll_back(
            parts.client,
            parts.database_url,
            actor=ACTOR,
            reasons=[reason],
            figures={
                **rollback.as_dict(),
                "roll_back": True,
                "reason": reason,
                "drift_report": summary.report_id,
                "cooldown_labels": parts.settings.rollback_cooldown_labels,
            },
            to=rollback.target,
            retired=rollback.episode,
        )
    except (RegistryError, MlflowException, psycopg.Error) as error:
        summary.action = Action.ROLLBACK_FAILED
        summary.detail = f"rollback was due ({reason}) but failed: {first_line(error)}"
        summary.details["rollback"] = {"error": summary.detail}
        return
    summary.action = Action.ROLLED_BACK
    retired = ", ".join(f"v{version}" for version in rollback.episode)
    summary.detail = f"rolled back: v{good} is champion again, {retired} retired ({reason})"
    summary.details["rollback"] = {
        "bad": bad,
        "restored": good,
        "retired": list(rollback.episode),
        "reason": reason,
        "cooldown_labels": parts.settings.rollback_cooldown_labels,
    }


def alert_text(summary: RunSummary, settings: MonitorSettings, kinds: list[AlertKind]) -> str:
    """The alert's text for people: what was found, the figures against their thresholds, the action."""
    lines = [
        f"Cali Housing monitor: {', '.join(kinds)}"
        f" (report {summary.report_id}, "
        + (f"champion v{summary.model_version})" if summary.model_version else "no champion yet)")
    ]
    if summary.psi:
        top = sorted(summary.psi.items(), key=lambda item: -item[1])[:4]
        lines.append(
            "PSI: "
            + ", ".join(f"{name} {value:.2f}" for name, value in top)
            + f" (threshold {settings.psi_threshold}); drifted share {summary.drift_share or 0:.2f}"
        )
    if summary.live_mae is not None:
        lines.append(
            f"live MAE {summary.live_mae:.3f} on {summary.labelled_rows} rows"
            f" vs {summary.reference_mae or math.nan:.3f} at training"
        )
    if summary.estimated_mae is not None:
        lines.append(_estimate_line(summary))
    concept = summary.details.get("concept")
    if isinstance(concept, dict) and summary.realized_to_estimated is not None:
        lines.append(
            f"realized ÷ estimated MAE {summary.realized_to_estimated:.2f} on {concept['rows']} labelled rows"
            + (
                ": a concept shift (prices moved with the features unchanged)"
                if AlertKind.CONCEPT_SHIFT in kinds
                else ""
            )
        )
    if summary.trainer is not None and summary.trainer.failed:
        lines.append(f"the last trainer failed: {summary.trainer.trainer} ({summary.trainer.reason})")
    for stalled in summary.stalled:
        lines.append(f"a {stalled.state} trainer: {stalled.detail}")
    lines.append(f"action: {summary.action}" + (f" ({summary.detail})" if summary.detail else ""))
    return "\n".join(lines)


def _estimate_line(summary: RunSummary) -> str:
    """The estimate with its SE, against the champion's band (or the training MAE without one)."""
    assert summary.estimated_mae is not None
    se = f" (SE {summary.estimate_se:.3f})" if summary.estimate_se is not None else ""
    band = summary.details.get("estimate", {}).get("band")
    if isinstance(band, dict):
        against = f"its band [{band['lower']:.3f}, {band['upper']:.3f}]"
    else:
        against = f"{summary.reference_mae or math.nan:.3f} at training"
    return f"estimated MAE {summary.estimated_mae:.3f}{se} without labels vs {against}"


def due_alerts(
    conn: psycopg.Connection, summary: RunSummary, verdict: Verdict | None, now: datetime, cooldown: timedelta
) -> list[AlertKind]:
    """The kinds this run alerts: an episode that starts (or outlasts the cool-down), or an event.
    ``verdict`` None: a run without a champion (only the trainer's and the launch's episodes)."""
    due: list[AlertKind] = []
    trainer = summary.trainer
    # Each failed trainer is its own episode (its name is the subject); a success ends it.
    if summary.trainer_checked:
        failed = trainer if trainer is not None and trainer.failed else None
        subject = failed.trainer if failed is not None else None
        state = observe(conn, AlertKind.TRAINER_FAILED, failed is not None, now, subject=subject)
        if state.due(now, cooldown):
            due.append(AlertKind.TRAINER_FAILED)
        # A suspended or stuck Job stays until someone acts: one episode while the same Jobs stall.
        names = ", ".join(stalled.trainer for stalled in summary.stalled) or None
        if observe(conn, AlertKind.TRAINER_STALLED, bool(names), now, subject=names).due(now, cooldown):
            due.append(AlertKind.TRAINER_STALLED)
    launch_failed = summary.action == Action.LAUNCH_FAILED
    if verdict is None:  # no champion: the first model's launch is the only episode besides the trainer
        if observe(conn, AlertKind.LAUNCH_FAILED, launch_failed, now).due(now, cooldown):
            due.append(AlertKind.LAUNCH_FAILED)
    elif summary.status != RunStatus.INSUFFICIENT_DATA:
        for kind, active in (
            (AlertKind.DRIFT, summary.drift),
            (AlertKind.LIVE_ERROR, verdict.live_degraded),
            # Under drift a higher estimate is the drift's own consequence (harder districts): the drift
            # alert carries its figures; it is an episode of its own only on undrifted traffic.
            (AlertKind.ESTIMATED_DEGRADATION, verdict.estimated_degraded and not summary.drift),
            (AlertKind.ESTIMATED_REGRESSION, verdict.estimated_regression),
            (AlertKind.CONCEPT_SHIFT, verdict.concept_shift),
            (AlertKind.LAUNCH_FAILED, launch_failed),
        ):
            if observe(conn, kind, active, now).due(now, cooldown):
                due.append(kind)
    if summary.action is Action.ROLLED_BACK:  # an event, not an episode: always alerted
        due.append(AlertKind.ROLLED_BACK)
    elif summary.action is Action.ROLLBACK_FAILED:
        due.append(AlertKind.ROLLBACK_FAILED)
    return due


def alert(
    parts: MonitorParts, conn: psycopg.Connection, summary: RunSummary, now: datetime, verdict: Verdict | None
) -> None:
    """Send the run's due alerts on every channel; ``summary.alerted`` and ``details.alert`` say how."""
    settings = parts.settings
    due = due_alerts(conn, summary, verdict, now, timedelta(minutes=settings.alert_cooldown_minutes))
    conn.commit()
    if not due:
        return
    summary.details["alert_kinds"] = due
    if not parts.channels:
        summary.details["alert"] = "no alert channel configured (ALERT_WEBHOOK_URL or TELEGRAM_BOT_TOKEN)"
        return
    message = Alert(", ".join(due), alert_text(summary, settings, due), {"report": summary.as_dict()})
    delivered, errors = deliver(parts.channels, message)
    summary.details["alert"] = {"delivered": delivered, "errors": errors}
    if delivered:
        summary.alerted = True
        for kind in due:
            mark_alerted(conn, kind, now)
        conn.commit()
