"""A monitor run's verdict: a pure function of what the run measured and the thresholds it was given.

``judge`` composes the rules, each a pure function in its own module with its own case table
(tests/unit/test_monitor_verdict.py):
1. drift (``drift.judge_drift``): PSI or Evidently's drifted share, on DRIFT_MIN_ROWS predictions;
2. degradation (``degradation.judge_live``, ``estimate.judge_estimate``): the live MAE on
   ROLLBACK_MIN_ROWS labels beyond the training MAE; the label-free estimate above the champion's band;
   where labels exist, realized ÷ estimated outside [0.9, 1.1] is a concept shift
   (``estimate.judge_concept_shift``: alerted, no status, no launch);
3. rollback (``rollback.judge_rollback``, ``rollback.judge_estimated_regression``): a fresh champion
   worse than the model before its episode by a sequential test on the same labelled rows; before the
   labels, estimated worse (alerted); after a rollback, a cool-down holds launches
   (``rollback.cooldown_hold``);
4. the trainer (``plan.judge_trainer``): a failed trainer is alerted and asks for nothing;
5. status (``plan.status_of``): ``drift`` before ``degraded`` before ``ok``, else ``insufficient_data``;
6. plan (``plan.plan_of``): a due rollback first; else a signal RETRAIN_ON names launches the trainer;
7. new labels (``labels.hold_for_labels``): a launch waits for RETRAIN_MIN_NEW_LABELS labelled rows
   newer than any model trained on (``wait_for_labels``: alerted, recorded, nothing launched).

The verdict's reasons say, for each rule that spoke, which figure against which threshold, in the
order above.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.vocabulary import Plan, RetrainSignal, RunStatus, Trigger
from services.monitor.decide.degradation import judge_live
from services.monitor.decide.drift import judge_drift
from services.monitor.decide.estimate import judge_concept_shift, judge_estimate
from services.monitor.decide.labels import hold_for_labels
from services.monitor.decide.plan import judge_trainer, plan_of, status_of
from services.monitor.decide.rollback import cooldown_hold, judge_estimated_regression, judge_rollback
from services.monitor.decide.rule import Limits, Measured


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
    concept_shift: bool  # realized ÷ estimated on the window's labelled rows left [0.9, 1.1]
    rollback_due: bool
    rollback_reason: str | None  # why the rollback check did or did not call for one (None: no check)
    detail: str  # one line for people when the window could not be judged, or the run waits for labels


def judge(measured: Measured, limits: Limits) -> Verdict:
    """The verdict on one run's figures; see the module's rules."""
    drift = judge_drift(measured, limits)
    live = judge_live(measured, limits)
    estimate = judge_estimate(measured, limits)
    concept = judge_concept_shift(measured, limits)
    rollback = judge_rollback(measured, limits)
    regression = judge_estimated_regression(measured, limits, rollback.active)
    trainer = judge_trainer(measured)
    findings = (drift, live, estimate, concept, rollback, regression, trainer)
    degraded = live.active or estimate.active or regression.active or rollback.active
    status, detail = status_of(measured, limits, drift=drift.active, degraded=degraded)
    signals = {
        RetrainSignal.DRIFT: drift.active,
        RetrainSignal.ESTIMATED_DEGRADATION: estimate.active,
        RetrainSignal.LIVE_DEGRADATION: live.active,
    }
    plan, plan_reasons = plan_of(signals, rollback.active, limits, cooldown_hold(measured))
    plan, labels = hold_for_labels(plan, signals, measured, limits)
    return Verdict(
        status=status,
        triggers=tuple(trigger for finding in findings for trigger in finding.triggers),
        plan=plan,
        reasons=tuple(reason for finding in findings for reason in finding.reasons)
        + plan_reasons
        + labels.reasons,
        drift=drift.active,
        psi_drifted=drift.psi_drifted,
        live_degraded=live.active,
        estimated_degraded=estimate.active,
        estimated_regression=regression.active,
        concept_shift=concept.active,
        rollback_due=rollback.active,
        rollback_reason=rollback.reason,
        detail=labels.reasons[0] if labels.active else detail,
    )
