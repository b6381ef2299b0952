"""Rules 4-6 of the verdict: the trainer's outcome, the run's status, and what the run should do.

- a failed trainer is a trigger (``trainer_failed``, alerted) but asks for nothing: the next signal
  launches anew;
- status: ``drift`` before ``degraded`` (a due rollback is degraded too) before ``ok``; a window too
  small to judge drift, with nothing else to say, is ``insufficient_data``;
- plan: a due rollback comes first (a retrain would start from the worse champion); else drift, an
  estimated or a live degradation launch the trainer when RETRAIN_ON names that signal (the others
  only alert), unless a hold (the cool-down after a rollback) says why it waits for labels
  (``wait_for_labels``); else nothing. The
  estimate never rolls back: a rollback needs labels.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.common.vocabulary import Plan, RetrainSignal, RunStatus, Trigger
from services.monitor.decide.rule import Finding, Limits, Measured, enough_rows


def judge_trainer(measured: Measured) -> Finding:
    """The newest finished trainer: a failure is named (and alerted), a success or none is nothing."""
    trainer = measured.trainer
    if trainer is None or not trainer.failed:
        return Finding()
    return Finding(
        True, (Trigger.TRAINER_FAILED,), (f"the last trainer failed: {trainer.trainer} ({trainer.reason})",)
    )


def status_of(measured: Measured, limits: Limits, *, drift: bool, degraded: bool) -> tuple[RunStatus, str]:
    """(status, a line for people when the window could not be judged, else empty)."""
    if drift:
        return RunStatus.DRIFT, ""
    if degraded:
        return RunStatus.DEGRADED, ""
    if enough_rows(measured, limits):
        return RunStatus.OK, ""
    return (
        RunStatus.INSUFFICIENT_DATA,
        f"{measured.rows} predictions in the window; {limits.drift_min_rows} needed",
    )


def plan_of(
    signals: Mapping[RetrainSignal, bool], rollback_due: bool, limits: Limits, hold: str | None = None
) -> tuple[Plan, tuple[str, ...]]:
    """(plan, reasons): a due rollback first, else a launch on a signal RETRAIN_ON names unless ``hold``
    says why it waits, else nothing."""
    alert_only = [signal for signal, active in signals.items() if active and signal not in limits.retrain_on]
    reasons: tuple[str, ...] = ()
    if alert_only:
        verb = "alerts" if len(alert_only) == 1 else "alert"
        reasons = (f"{', '.join(alert_only)} only {verb} (RETRAIN_ON)",)
    if rollback_due:
        return Plan.ROLL_BACK, reasons
    if any(active and signal in limits.retrain_on for signal, active in signals.items()):
        return (Plan.WAIT_FOR_LABELS, (*reasons, hold)) if hold else (Plan.LAUNCH_TRAINER, reasons)
    return Plan.NOTHING, reasons
