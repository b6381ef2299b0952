"""A monitor run's verdict: a pure function of what the run measured and the thresholds it was given.

Rules:
1. a window judges drift only with DRIFT_MIN_ROWS predictions: then a feature whose PSI reaches
   PSI_THRESHOLD, or an Evidently drifted share reaching DRIFT_SHARE_THRESHOLD, is drift;
2. the champion is degraded when ROLLBACK_MIN_ROWS labelled predictions show a live MAE beyond its
   training (holdout) MAE by more than LIVE_MAE_TOLERANCE (an undefined MAE never degrades), or, before
   any label, when its error model's estimate on a window of DRIFT_MIN_ROWS rows is beyond that MAE by
   more than ESTIMATED_MAE_TOLERANCE (``estimated_degradation``);
3. a champion promoted over another version is rolled back when, on the same labelled rows since its
   promotion, its MAE is worse than its predecessor's by more than ROLLBACK_TOLERANCE; before
   ROLLBACK_MIN_ROWS labels exist, the two error models' estimates on the same window rows may say the
   same (``estimated_regression``): that is alerted, never rolled back on;
4. a failed trainer is a trigger (it is alerted) but asks for nothing: the next drift launches anew;
5. status: ``drift`` before ``degraded`` (a due rollback is degraded too) before ``ok``; a window too
   small to judge drift, with nothing else to say, is ``insufficient_data``;
6. plan: a due rollback comes first (a retrain would start from the worse champion); else drift, an
   estimated or a live degradation launch the trainer when RETRAIN_ON names that signal (the others
   only alert); else nothing. The estimate never rolls back: a rollback needs labels.

The verdict's reasons say, for each rule that spoke, which figure against which threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.vocabulary import Plan, RetrainSignal, RunStatus, Trigger
from services.monitor.launchers import TrainerOutcome
from services.monitor.live_error import degraded
from services.monitor.rollback_check import RollbackFigures, decide_rollback
from services.monitor.settings import MonitorSettings


@dataclass(frozen=True)
class Limits:
    """The thresholds a verdict is judged against (from MonitorSettings, read once by the CLI)."""

    drift_min_rows: int
    psi_threshold: float
    drift_share_threshold: float
    live_mae_tolerance: float
    rollback_tolerance: float
    rollback_min_rows: int
    estimated_mae_tolerance: float = 0.20
    retrain_on: frozenset[RetrainSignal] = frozenset(RetrainSignal)

    @classmethod
    def of(cls, settings: MonitorSettings) -> Limits:
        return cls(
            drift_min_rows=settings.drift_min_rows,
            psi_threshold=settings.psi_threshold,
            drift_share_threshold=settings.drift_share_threshold,
            live_mae_tolerance=settings.live_mae_tolerance,
            rollback_tolerance=settings.rollback_tolerance,
            rollback_min_rows=settings.rollback_min_rows,
            estimated_mae_tolerance=settings.estimated_mae_tolerance,
            retrain_on=settings.retrain_signals,
        )


@dataclass(frozen=True)
class Measured:
    """What a run measured on its window (a figure not measured is empty or None)."""

    rows: int  # predictions in the window
    psi: Mapping[str, float] = field(default_factory=dict)  # per feature, when the window was judged
    drift_share: float | None = None  # Evidently's drifted share, when it ran
    live_mae: float | None = None  # the champion's MAE on its labelled predictions in the window
    labelled_rows: int = 0
    reference_mae: float | None = None  # the champion's holdout MAE at training
    estimated_mae: float | None = None  # the error model's estimate on the window's sample (no labels)
    estimated_rows: int = 0  # the sample rows it averaged
    rollback: RollbackFigures | None = None  # None: no promotion over another version to check
    previous_estimated_mae: float | None = None  # the predecessor's estimate on the champion's sample
    trainer: TrainerOutcome | None = None  # the newest finished trainer (None: none, or not seen)


@dataclass(frozen=True)
class Verdict:
    status: RunStatus
    triggers: tuple[Trigger, ...]
    plan: Plan
    reasons: tuple[str, ...]
    drift: bool  # the window drifted (PSI or drifted share), with enough rows to say so
    psi_drifted: tuple[str, ...]  # features whose PSI reached the threshold
    live_degraded: bool
    estimated_degraded: bool
    estimated_regression: bool
    rollback_due: bool
    rollback_reason: str | None  # why the rollback check did or did not call for one (None: no check)
    detail: str  # one line for people when the window could not be judged; else empty


def judge(measured: Measured, limits: Limits) -> Verdict:
    """The verdict on one run's figures; see the module's rules."""
    triggers: list[Trigger] = []
    reasons: list[str] = []

    enough = measured.rows >= limits.drift_min_rows
    psi_drifted: tuple[str, ...] = ()
    share_drift = False
    if enough:
        psi_drifted = tuple(name for name, value in measured.psi.items() if value >= limits.psi_threshold)
        share = measured.drift_share
        share_drift = share is not None and share >= limits.drift_share_threshold
        if psi_drifted:
            triggers.append(Trigger.PSI)
            reasons.append(
                "PSI reached "
                f"{limits.psi_threshold}: "
                + ", ".join(f"{name} {measured.psi[name]:.3f}" for name in psi_drifted)
            )
        if share is not None:
            reasons.append(
                f"Evidently's drifted share {share:.2f} "
                f"{'reached' if share_drift else 'is below'} {limits.drift_share_threshold}"
            )
        if not psi_drifted and measured.psi:
            reasons.append(f"no feature's PSI reached {limits.psi_threshold}")
    else:
        reasons.append(f"{measured.rows} predictions in the window; {limits.drift_min_rows} needed")
    drift = bool(psi_drifted) or share_drift
    if share_drift:
        triggers.append(Trigger.DRIFT_SHARE)

    live_degraded = degraded(
        measured.live_mae,
        measured.reference_mae,
        measured.labelled_rows,
        tolerance=limits.live_mae_tolerance,
        min_rows=limits.rollback_min_rows,
    )
    reasons.append(_live_reason(measured, limits, live_degraded))
    if live_degraded:
        triggers.append(Trigger.LIVE_ERROR)

    estimated, reference = measured.estimated_mae, measured.reference_mae
    estimated_degraded = (
        enough
        and estimated is not None
        and reference is not None
        and estimated > reference * (1 + limits.estimated_mae_tolerance)
    )
    if enough and estimated is not None and reference is not None:
        reasons.append(
            f"estimated MAE {estimated:.3f} on {measured.estimated_rows} rows without labels is "
            f"{'beyond' if estimated_degraded else 'within'} {limits.estimated_mae_tolerance:.0%} "
            f"of the training MAE {reference:.3f}"
        )
    if estimated_degraded:
        triggers.append(Trigger.ESTIMATED_DEGRADATION)

    rollback_due, rollback_reason = False, None
    if measured.rollback is not None:
        rollback_due, rollback_reason = decide_rollback(
            measured.rollback.champion,
            measured.rollback.previous,
            tolerance=limits.rollback_tolerance,
            min_rows=limits.rollback_min_rows,
        )
        reasons.append(f"rollback check: {rollback_reason}")
        if rollback_due:
            triggers.append(Trigger.ROLLBACK)

    estimated_regression = _estimated_regression(measured, limits, enough, rollback_due)
    if estimated_regression:
        triggers.append(Trigger.ESTIMATED_REGRESSION)
        assert measured.rollback is not None
        champion, previous = measured.rollback.champion.version, measured.rollback.previous.version
        reasons.append(
            f"before {limits.rollback_min_rows} labels, v{champion}'s estimated MAE {estimated:.3f} is worse "
            f"than v{previous}'s {measured.previous_estimated_mae:.3f} on the same rows by more than "
            f"{limits.rollback_tolerance:.0%}: alerted, not rolled back (a rollback needs labels)"
        )

    trainer = measured.trainer
    if trainer is not None and trainer.failed:
        triggers.append(Trigger.TRAINER_FAILED)
        reasons.append(f"the last trainer failed: {trainer.trainer} ({trainer.reason})")

    detail = ""
    if drift:
        status = RunStatus.DRIFT
    elif live_degraded or estimated_degraded or estimated_regression or rollback_due:
        status = RunStatus.DEGRADED
    elif enough:
        status = RunStatus.OK
    else:
        status = RunStatus.INSUFFICIENT_DATA
        detail = f"{measured.rows} predictions in the window; {limits.drift_min_rows} needed"

    signals = {
        RetrainSignal.DRIFT: drift,
        RetrainSignal.ESTIMATED_DEGRADATION: estimated_degraded,
        RetrainSignal.LIVE_DEGRADATION: live_degraded,
    }
    alert_only = [signal for signal, active in signals.items() if active and signal not in limits.retrain_on]
    if alert_only:
        reasons.append(
            f"{', '.join(alert_only)} only alert{'s' if len(alert_only) == 1 else ''} (RETRAIN_ON)"
        )
    if rollback_due:
        plan = Plan.ROLL_BACK
    elif any(active and signal in limits.retrain_on for signal, active in signals.items()):
        plan = Plan.LAUNCH_TRAINER
    else:
        plan = Plan.NOTHING
    return Verdict(
        status=status,
        triggers=tuple(triggers),
        plan=plan,
        reasons=tuple(reasons),
        drift=drift,
        psi_drifted=psi_drifted,
        live_degraded=live_degraded,
        estimated_degraded=estimated_degraded,
        estimated_regression=estimated_regression,
        rollback_due=rollback_due,
        rollback_reason=rollback_reason,
        detail=detail,
    )


def _estimated_regression(measured: Measured, limits: Limits, enough: bool, rollback_due: bool) -> bool:
    """A fresh champion estimated worse than its predecessor while the labels cannot decide yet."""
    rollback, estimated, previous = measured.rollback, measured.estimated_mae, measured.previous_estimated_mae
    if rollback is None or rollback_due or not enough or estimated is None or previous is None:
        return False
    if rollback.champion.rows >= limits.rollback_min_rows:  # the labels decide
        return False
    return estimated > previous * (1 + limits.rollback_tolerance)


def _live_reason(measured: Measured, limits: Limits, live_degraded: bool) -> str:
    live, reference, rows = measured.live_mae, measured.reference_mae, measured.labelled_rows
    if rows < limits.rollback_min_rows:
        return f"{rows} labelled predictions; {limits.rollback_min_rows} needed to judge the live MAE"
    if live is None:
        return f"the live MAE on {rows} labelled predictions is undefined (a logged price is not finite)"
    if reference is None:
        return f"live MAE {live:.3f} on {rows} rows; no training MAE to compare it with"
    return (
        f"live MAE {live:.3f} on {rows} rows is {'beyond' if live_degraded else 'within'} "
        f"{limits.live_mae_tolerance:.0%} of the training MAE {reference:.3f}"
    )
