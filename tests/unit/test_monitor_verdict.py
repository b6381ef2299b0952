"""The monitor's verdict as a pure function of measured figures and thresholds: a table of cases."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from services.common.vocabulary import Plan, RetrainSignal, RollbackState, RunStatus, Trigger
from services.monitor.decide.degradation import judge_live
from services.monitor.decide.drift import judge_drift
from services.monitor.decide.estimate import judge_estimate
from services.monitor.decide.labels import hold_for_labels
from services.monitor.decide.plan import judge_trainer, plan_of, status_of
from services.monitor.decide.rollback import cooldown_hold, judge_estimated_regression, judge_rollback
from services.monitor.decide.rule import Limits, Measured
from services.monitor.decide.verdict import judge
from services.monitor.launchers import TrainerOutcome
from services.monitor.rollback_check import Cooldown, RollbackFigures
from services.monitor.sequential import SequentialTest

LIMITS = Limits(
    drift_min_rows=500,
    psi_threshold=0.2,
    drift_share_threshold=0.5,
    live_mae_tolerance=0.25,
    rollback_min_rows=200,
)
CALM_PSI = {"MedInc": 0.03, "HouseAge": 0.01}
STEADY = Measured(
    rows=2000, psi=CALM_PSI, drift_share=0.1, live_mae=0.33, labelled_rows=300, reference_mae=0.32
)
PROMOTED_AT = datetime(2026, 1, 1, tzinfo=UTC)
# (effect, lower, upper, p-value) of the mean |error| difference, as the sequential test reports them
FIGURES = {
    RollbackState.WORSE: (0.6, 0.5, 0.7, 1e-9),
    RollbackState.NOT_WORSE: (0.0, -0.02, 0.02, 1.0),
    RollbackState.OPEN: (0.01, -0.03, 0.05, 0.4),
    RollbackState.INCONCLUSIVE: (0.01, -0.02, 0.04, 0.3),
}


def rollback(state: RollbackState, rows: int = 300) -> RollbackFigures:
    """v2 promoted over v1 (the version before the episode), its test in ``state`` after ``rows`` labels."""
    if state is RollbackState.WAITING:
        test = SequentialTest(state, rows, None, None, None, None, None, None, None)
    else:
        effect, lower, upper, p = FIGURES[state]
        decided = None if state is RollbackState.OPEN else rows
        test = SequentialTest(state, rows, decided, effect, lower, upper, p, 0.3, 0.03)
    return RollbackFigures(2, PROMOTED_AT, 1, (2,), test, {1: "the first champion"})


WORSE = rollback(RollbackState.WORSE)


FAILED = TrainerOutcome("housing-trainer-42", failed=True, reason="exited 3")
SUCCEEDED = TrainerOutcome("housing-trainer-43", failed=False, reason="succeeded")


@dataclass(frozen=True)
class Case:
    measured: Measured
    status: RunStatus
    triggers: tuple[Trigger, ...]
    plan: Plan


CASES = {
    "steady traffic is ok and asks nothing": Case(STEADY, RunStatus.OK, (), Plan.NOTHING),
    "a feature's PSI at the threshold is drift: retrain": Case(
        replace(STEADY, psi={**CALM_PSI, "MedInc": 0.2}), RunStatus.DRIFT, (Trigger.PSI,), Plan.LAUNCH_TRAINER
    ),
    "Evidently's drifted share alone is drift": Case(
        replace(STEADY, drift_share=0.5), RunStatus.DRIFT, (Trigger.DRIFT_SHARE,), Plan.LAUNCH_TRAINER
    ),
    "both drift tests name both triggers": Case(
        replace(STEADY, psi={"MedInc": 0.9}, drift_share=0.8),
        RunStatus.DRIFT,
        (Trigger.PSI, Trigger.DRIFT_SHARE),
        Plan.LAUNCH_TRAINER,
    ),
    "a NaN PSI is never drift": Case(
        replace(STEADY, psi={"MedInc": math.nan}), RunStatus.OK, (), Plan.NOTHING
    ),
    "too few rows cannot drift, whatever their figures": Case(
        replace(STEADY, rows=499, psi={"MedInc": 5.0}, drift_share=1.0, labelled_rows=0, live_mae=None),
        RunStatus.INSUFFICIENT_DATA,
        (),
        Plan.NOTHING,
    ),
    "a live MAE beyond tolerance degrades: retrain": Case(
        replace(STEADY, live_mae=0.41), RunStatus.DEGRADED, (Trigger.LIVE_ERROR,), Plan.LAUNCH_TRAINER
    ),
    "a live MAE within tolerance is ok": Case(replace(STEADY, live_mae=0.40), RunStatus.OK, (), Plan.NOTHING),
    "a degraded champion is judged on a window too small for drift": Case(
        replace(STEADY, rows=300, live_mae=0.9),
        RunStatus.DEGRADED,
        (Trigger.LIVE_ERROR,),
        Plan.LAUNCH_TRAINER,
    ),
    "too few labelled rows never degrade": Case(
        replace(STEADY, live_mae=0.9, labelled_rows=199), RunStatus.OK, (), Plan.NOTHING
    ),
    "an undefined live MAE never degrades": Case(
        replace(STEADY, live_mae=None), RunStatus.OK, (), Plan.NOTHING
    ),
    "no training MAE: nothing to degrade from": Case(
        replace(STEADY, live_mae=0.9, reference_mae=None), RunStatus.OK, (), Plan.NOTHING
    ),
    "drift outranks a degraded champion in the status": Case(
        replace(STEADY, psi={"MedInc": 0.5}, live_mae=0.9),
        RunStatus.DRIFT,
        (Trigger.PSI, Trigger.LIVE_ERROR),
        Plan.LAUNCH_TRAINER,
    ),
    "a champion worse live than its predecessor is rolled back": Case(
        replace(STEADY, rollback=WORSE), RunStatus.DEGRADED, (Trigger.ROLLBACK,), Plan.ROLL_BACK
    ),
    "a rollback comes before a retrain, drift or not": Case(
        replace(STEADY, psi={"MedInc": 0.5}, rollback=WORSE),
        RunStatus.DRIFT,
        (Trigger.PSI, Trigger.ROLLBACK),
        Plan.ROLL_BACK,
    ),
    "a rollback is judged on a window too small for drift": Case(
        replace(STEADY, rows=10, rollback=WORSE),
        RunStatus.DEGRADED,
        (Trigger.ROLLBACK,),
        Plan.ROLL_BACK,
    ),
    "a champion not worse than its predecessor by the minimum effect stays": Case(
        replace(STEADY, rollback=rollback(RollbackState.NOT_WORSE)), RunStatus.OK, (), Plan.NOTHING
    ),
    "too few labelled rows since the promotion never roll back": Case(
        replace(STEADY, rollback=rollback(RollbackState.WAITING, rows=199)), RunStatus.OK, (), Plan.NOTHING
    ),
    "a failed trainer is a trigger that asks nothing": Case(
        replace(STEADY, rows=10, labelled_rows=0, live_mae=None, trainer=FAILED),
        RunStatus.INSUFFICIENT_DATA,
        (Trigger.TRAINER_FAILED,),
        Plan.NOTHING,
    ),
    "a failed trainer does not stop a retrain on drift": Case(
        replace(STEADY, psi={"MedInc": 0.5}, trainer=FAILED),
        RunStatus.DRIFT,
        (Trigger.PSI, Trigger.TRAINER_FAILED),
        Plan.LAUNCH_TRAINER,
    ),
    "an estimate beyond its tolerance degrades before any label: retrain": Case(
        replace(STEADY, estimated_mae=0.39, estimated_rows=2000, live_mae=None, labelled_rows=0),
        RunStatus.DEGRADED,
        (Trigger.ESTIMATED_DEGRADATION,),
        Plan.LAUNCH_TRAINER,
    ),
    "an estimate within its tolerance is ok": Case(
        replace(STEADY, estimated_mae=0.38, estimated_rows=2000), RunStatus.OK, (), Plan.NOTHING
    ),
    "an estimate on a window too small for drift is not judged": Case(
        replace(STEADY, rows=499, estimated_mae=0.9, estimated_rows=499, live_mae=None, labelled_rows=0),
        RunStatus.INSUFFICIENT_DATA,
        (),
        Plan.NOTHING,
    ),
    "no estimate (no error model) is no trigger": Case(
        replace(STEADY, estimated_mae=None), RunStatus.OK, (), Plan.NOTHING
    ),
    "an estimate never rolls back": Case(
        replace(STEADY, estimated_mae=0.9, estimated_rows=2000, rollback=rollback(RollbackState.OPEN)),
        RunStatus.DEGRADED,
        (Trigger.ESTIMATED_DEGRADATION,),
        Plan.LAUNCH_TRAINER,
    ),
    "before the labels, a champion estimated worse than its predecessor is alerted, not rolled back": Case(
        replace(
            STEADY,
            estimated_mae=0.36,
            estimated_rows=2000,
            previous_estimated_mae=0.30,
            rollback=rollback(RollbackState.WAITING, rows=20),
        ),
        RunStatus.DEGRADED,
        (Trigger.ESTIMATED_REGRESSION,),
        Plan.NOTHING,
    ),
    "an estimated regression within the rollback tolerance is nothing": Case(
        replace(
            STEADY,
            estimated_mae=0.32,
            estimated_rows=2000,
            previous_estimated_mae=0.30,
            rollback=rollback(RollbackState.WAITING, rows=20),
        ),
        RunStatus.OK,
        (),
        Plan.NOTHING,
    ),
    "once the labels can judge, the estimates are not compared": Case(
        replace(
            STEADY, estimated_mae=0.36, previous_estimated_mae=0.30, rollback=rollback(RollbackState.OPEN)
        ),
        RunStatus.OK,
        (),
        Plan.NOTHING,
    ),
    "after a rollback, drift waits for the cool-down's labels": Case(
        replace(STEADY, psi={"MedInc": 0.5}, cooldown=Cooldown(3, 1, PROMOTED_AT, 200, 1000)),
        RunStatus.DRIFT,
        (Trigger.PSI,),
        Plan.WAIT_FOR_LABELS,
    ),
    "with the cool-down's labels in, drift launches again": Case(
        replace(STEADY, psi={"MedInc": 0.5}, cooldown=Cooldown(3, 1, PROMOTED_AT, 1000, 1000)),
        RunStatus.DRIFT,
        (Trigger.PSI,),
        Plan.LAUNCH_TRAINER,
    ),
    "a cool-down never holds a rollback": Case(
        replace(STEADY, rollback=WORSE, cooldown=Cooldown(3, 1, PROMOTED_AT, 0, 1000)),
        RunStatus.DEGRADED,
        (Trigger.ROLLBACK,),
        Plan.ROLL_BACK,
    ),
    "a trainer that succeeded is no trigger": Case(
        replace(STEADY, trainer=SUCCEEDED), RunStatus.OK, (), Plan.NOTHING
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_verdict_table(case: Case) -> None:
    verdict = judge(case.measured, LIMITS)
    assert (verdict.status, verdict.triggers, verdict.plan) == (case.status, case.triggers, case.plan)
    assert verdict.drift == (verdict.status is RunStatus.DRIFT)


def test_the_reasons_name_each_figure_against_its_threshold() -> None:
    verdict = judge(
        replace(STEADY, psi={"MedInc": 0.456, "HouseAge": 0.01}, drift_share=0.3, live_mae=0.5), LIMITS
    )
    assert verdict.psi_drifted == ("MedInc",)
    assert verdict.reasons[:2] == (
        "PSI reached 0.2: MedInc 0.456",
        "Evidently's drifted share 0.30 is below 0.5",
    )
    assert "live MAE 0.500 on 300 rows is beyond 25% of the training MAE 0.320" in verdict.reasons


def test_an_insufficient_window_says_how_many_rows_it_needs() -> None:
    verdict = judge(Measured(rows=120), LIMITS)
    assert verdict.detail == "120 predictions in the window; 500 needed"
    assert verdict.reasons[0] == verdict.detail
    assert "0 labelled predictions; 200 needed to judge the live MAE" in verdict.reasons


def test_the_rollback_reason_is_kept_whether_or_not_it_is_due() -> None:
    due = judge(replace(STEADY, rollback=WORSE), LIMITS)
    assert due.rollback_due and due.rollback_reason
    assert due.rollback_reason.startswith("v2 is worse than v1: roll back (n=300, always-valid p=1e-09")
    assert "interval [+0.5000, +0.7000]" in due.rollback_reason
    assert due.rollback_reason.endswith("restores v1, the model before the episode (v2)")
    short = judge(replace(STEADY, rollback=rollback(RollbackState.WAITING, rows=50)), LIMITS)
    assert not short.rollback_due
    assert short.rollback_reason == "v2 against v1: 50 of 200 labelled rows before the rollback test speaks"
    assert judge(STEADY, LIMITS).rollback_reason is None


def test_a_failed_trainer_is_named_in_the_reasons() -> None:
    verdict = judge(replace(STEADY, trainer=FAILED), LIMITS)
    assert "the last trainer failed: housing-trainer-42 (exited 3)" in verdict.reasons


def test_retrain_on_leaves_the_other_signals_to_alert() -> None:
    estimated = replace(STEADY, estimated_mae=0.5, estimated_rows=2000)
    drift_only = replace(LIMITS, retrain_on=frozenset({RetrainSignal.DRIFT}))
    verdict = judge(estimated, drift_only)
    assert (verdict.status, verdict.triggers, verdict.plan) == (
        RunStatus.DEGRADED,
        (Trigger.ESTIMATED_DEGRADATION,),
        Plan.NOTHING,
    )
    assert verdict.estimated_degraded and "estimated_degradation only alerts (RETRAIN_ON)" in verdict.reasons
    assert judge(replace(STEADY, live_mae=0.9), drift_only).plan is Plan.NOTHING
    assert judge(replace(STEADY, psi={"MedInc": 0.5}), drift_only).plan is Plan.LAUNCH_TRAINER
    nothing = replace(LIMITS, retrain_on=frozenset())
    assert judge(replace(STEADY, psi={"MedInc": 0.5}), nothing).plan is Plan.NOTHING
    assert judge(replace(STEADY, rollback=WORSE), nothing).plan is Plan.ROLL_BACK


def test_the_estimate_is_named_in_the_reasons() -> None:
    verdict = judge(replace(STEADY, estimated_mae=0.4, estimated_rows=1500), LIMITS)
    assert (
        "estimated MAE 0.400 on 1500 rows without labels is beyond 20% of the training MAE 0.320"
        " (the champion has no estimate band: the old rule)" in verdict.reasons
    )


def test_the_limits_come_from_the_settings_and_retrain_on_is_checked() -> None:
    from pydantic import ValidationError

    from services.monitor.settings import MonitorSettings

    limits = Limits.of(MonitorSettings(retrain_on=" drift , live_degradation", estimated_mae_tolerance=0.3))
    assert limits.retrain_on == {RetrainSignal.DRIFT, RetrainSignal.LIVE_DEGRADATION}
    assert limits.estimated_mae_tolerance == 0.3
    assert Limits.of(MonitorSettings()).retrain_on == set(RetrainSignal)
    with pytest.raises(ValidationError, match="unknown RETRAIN_ON signals \\['psi'\\]"):
        MonitorSettings(retrain_on="drift,psi")


# Each rule on its own: (figures, limits) → (active, triggers), beside the table of the whole verdict.
RuleCase = tuple[Measured, bool, tuple[Trigger, ...]]

DRIFT_CASES: dict[str, RuleCase] = {
    "calm PSI and share": (STEADY, False, ()),
    "PSI at the threshold": (replace(STEADY, psi={"MedInc": 0.2}), True, (Trigger.PSI,)),
    "PSI just below it": (replace(STEADY, psi={"MedInc": 0.1999}), False, ()),
    "share at the threshold": (replace(STEADY, drift_share=0.5), True, (Trigger.DRIFT_SHARE,)),
    "no share measured": (replace(STEADY, drift_share=None), False, ()),
    "a NaN PSI": (replace(STEADY, psi={"MedInc": math.nan}), False, ()),
    "both": (replace(STEADY, psi={"MedInc": 0.9}, drift_share=0.8), True, (Trigger.PSI, Trigger.DRIFT_SHARE)),
    "one row short of the window": (
        replace(STEADY, rows=499, psi={"MedInc": 5.0}, drift_share=1.0),
        False,
        (),
    ),
}


@pytest.mark.parametrize("case", DRIFT_CASES.values(), ids=DRIFT_CASES.keys())
def test_the_drift_rule(case: RuleCase) -> None:
    measured, active, triggers = case
    finding = judge_drift(measured, LIMITS)
    assert (finding.active, finding.triggers) == (active, triggers)
    assert finding.psi_drifted == tuple(
        n for n, v in measured.psi.items() if v >= 0.2 and measured.rows >= 500
    )


LIVE_CASES: dict[str, RuleCase] = {
    "within tolerance": (replace(STEADY, live_mae=0.40), False, ()),
    "beyond it": (replace(STEADY, live_mae=0.41), True, (Trigger.LIVE_ERROR,)),
    "one label short": (replace(STEADY, live_mae=0.9, labelled_rows=199), False, ()),
    "undefined live MAE": (replace(STEADY, live_mae=None), False, ()),
    "no training MAE": (replace(STEADY, live_mae=0.9, reference_mae=None), False, ()),
    "a small window does not matter": (replace(STEADY, rows=10, live_mae=0.9), True, (Trigger.LIVE_ERROR,)),
}


@pytest.mark.parametrize("case", LIVE_CASES.values(), ids=LIVE_CASES.keys())
def test_the_live_degradation_rule(case: RuleCase) -> None:
    measured, active, triggers = case
    finding = judge_live(measured, LIMITS)
    assert (finding.active, finding.triggers) == (active, triggers) and len(finding.reasons) == 1


# A champion registered without a band: the old rule (the band's cases: tests/unit/test_monitor_estimate.py).
ESTIMATE_CASES: dict[str, RuleCase] = {
    "within tolerance": (replace(STEADY, estimated_mae=0.383), False, ()),
    "beyond it": (replace(STEADY, estimated_mae=0.385), True, (Trigger.ESTIMATED_DEGRADATION,)),
    "no estimate": (replace(STEADY, estimated_mae=None), False, ()),
    "no training MAE": (replace(STEADY, estimated_mae=0.9, reference_mae=None), False, ()),
    "a window too small": (replace(STEADY, rows=499, estimated_mae=0.9), False, ()),
}


@pytest.mark.parametrize("case", ESTIMATE_CASES.values(), ids=ESTIMATE_CASES.keys())
def test_the_estimated_degradation_rule(case: RuleCase) -> None:
    measured, active, triggers = case
    finding = judge_estimate(measured, LIMITS)
    assert (finding.active, finding.triggers) == (active, triggers)
    judged = (
        measured.estimated_mae is not None and measured.reference_mae is not None and measured.rows >= 500
    )
    assert len(finding.reasons) == int(judged)


ROLLBACK_CASES: dict[str, RuleCase] = {
    "no promotion to check": (STEADY, False, ()),
    "worse by the sequential test": (replace(STEADY, rollback=WORSE), True, (Trigger.ROLLBACK,)),
    "not worse by the minimum effect": (
        replace(STEADY, rollback=rollback(RollbackState.NOT_WORSE)),
        False,
        (),
    ),
    "too few labels": (replace(STEADY, rollback=rollback(RollbackState.WAITING, rows=199)), False, ()),
    "no decision yet": (replace(STEADY, rollback=rollback(RollbackState.OPEN)), False, ()),
    "inconclusive at the horizon": (
        replace(STEADY, rollback=rollback(RollbackState.INCONCLUSIVE, rows=5000)),
        False,
        (),
    ),
}


@pytest.mark.parametrize("case", ROLLBACK_CASES.values(), ids=ROLLBACK_CASES.keys())
def test_the_rollback_rule(case: RuleCase) -> None:
    measured, active, triggers = case
    finding = judge_rollback(measured, LIMITS)
    assert (finding.active, finding.triggers) == (active, triggers)
    assert (finding.reason is None) == (measured.rollback is None)


EARLY = replace(
    STEADY,
    estimated_mae=0.36,
    estimated_rows=2000,
    previous_estimated_mae=0.30,
    rollback=rollback(RollbackState.WAITING, rows=20),
)
REGRESSION_CASES: dict[str, tuple[Measured, bool, bool]] = {
    "estimated worse before the labels": (EARLY, False, True),
    "within the rollback tolerance": (replace(EARLY, estimated_mae=0.33), False, False),
    "a rollback already due": (EARLY, True, False),
    "the labels decide": (replace(EARLY, rollback=rollback(RollbackState.OPEN)), False, False),
    "no predecessor estimate": (replace(EARLY, previous_estimated_mae=None), False, False),
    "no promotion to check": (replace(EARLY, rollback=None), False, False),
    "a window too small": (replace(EARLY, rows=499), False, False),
}


@pytest.mark.parametrize("case", REGRESSION_CASES.values(), ids=REGRESSION_CASES.keys())
def test_the_estimated_regression_rule(case: tuple[Measured, bool, bool]) -> None:
    measured, rollback_due, active = case
    finding = judge_estimated_regression(measured, LIMITS, rollback_due)
    assert finding.active == active
    assert finding.triggers == ((Trigger.ESTIMATED_REGRESSION,) if active else ())


def test_the_cooldown_says_how_many_labels_it_waits_for() -> None:
    held = cooldown_hold(replace(STEADY, cooldown=Cooldown(3, 1, PROMOTED_AT, 200, 1000)))
    assert held == (
        "cool-down after rolling back v3 to v1: 200 of 1000 new labels before the next launch"
        " (ROLLBACK_COOLDOWN_LABELS)"
    )
    assert cooldown_hold(replace(STEADY, cooldown=Cooldown(3, 1, PROMOTED_AT, 1000, 1000))) is None
    assert cooldown_hold(STEADY) is None
    verdict = judge(replace(STEADY, live_mae=0.9, cooldown=Cooldown(3, 1, PROMOTED_AT, 5, 1000)), LIMITS)
    assert verdict.plan is Plan.WAIT_FOR_LABELS and verdict.reasons[-1] == cooldown_hold(
        replace(STEADY, cooldown=Cooldown(3, 1, PROMOTED_AT, 5, 1000))
    )


def test_the_trainer_rule() -> None:
    assert judge_trainer(replace(STEADY, trainer=FAILED)).triggers == (Trigger.TRAINER_FAILED,)
    assert not judge_trainer(replace(STEADY, trainer=SUCCEEDED)).active
    assert not judge_trainer(STEADY).active


STATUS_CASES: dict[str, tuple[int, bool, bool, RunStatus]] = {
    "drift outranks degraded": (2000, True, True, RunStatus.DRIFT),
    "degraded": (2000, False, True, RunStatus.DEGRADED),
    "degraded on a small window": (10, False, True, RunStatus.DEGRADED),
    "ok": (2000, False, False, RunStatus.OK),
    "a small window with nothing to say": (499, False, False, RunStatus.INSUFFICIENT_DATA),
}


@pytest.mark.parametrize("case", STATUS_CASES.values(), ids=STATUS_CASES.keys())
def test_the_status_rule(case: tuple[int, bool, bool, RunStatus]) -> None:
    rows, drift, degraded, expected = case
    status, detail = status_of(Measured(rows=rows), LIMITS, drift=drift, degraded=degraded)
    assert status is expected
    assert bool(detail) == (expected is RunStatus.INSUFFICIENT_DATA)


S = RetrainSignal
PLAN_CASES: dict[str, tuple[frozenset[RetrainSignal], bool, frozenset[RetrainSignal], Plan]] = {
    "nothing up": (frozenset(), False, frozenset(S), Plan.NOTHING),
    "drift launches": (frozenset({S.DRIFT}), False, frozenset(S), Plan.LAUNCH_TRAINER),
    "a rollback comes first": (frozenset({S.DRIFT}), True, frozenset(S), Plan.ROLL_BACK),
    "a rollback even when nothing retrains": (frozenset(), True, frozenset(), Plan.ROLL_BACK),
    "a signal RETRAIN_ON leaves out only alerts": (
        frozenset({S.ESTIMATED_DEGRADATION}),
        False,
        frozenset({S.DRIFT}),
        Plan.NOTHING,
    ),
    "one named signal is enough": (
        frozenset({S.ESTIMATED_DEGRADATION, S.LIVE_DEGRADATION}),
        False,
        frozenset({S.LIVE_DEGRADATION}),
        Plan.LAUNCH_TRAINER,
    ),
}


@pytest.mark.parametrize("case", PLAN_CASES.values(), ids=PLAN_CASES.keys())
def test_the_plan_rule(case: tuple[frozenset[RetrainSignal], bool, frozenset[RetrainSignal], Plan]) -> None:
    up, rollback_due, retrain_on, expected = case
    signals = {signal: signal in up for signal in RetrainSignal}
    plan, reasons = plan_of(signals, rollback_due, replace(LIMITS, retrain_on=retrain_on))
    assert plan is expected
    assert bool(reasons) == bool(up - retrain_on)
    held, held_reasons = plan_of(signals, rollback_due, replace(LIMITS, retrain_on=retrain_on), "cool-down")
    assert held is (Plan.WAIT_FOR_LABELS if expected is Plan.LAUNCH_TRAINER else expected)
    assert ("cool-down" in held_reasons) == (expected is Plan.LAUNCH_TRAINER)


NEEDS = replace(LIMITS, retrain_min_new_labels=667)
DRIFTED = replace(STEADY, psi={"MedInc": 0.5})
LABEL_CASES: dict[str, tuple[Measured, Limits, Plan]] = {
    "drift without new labels waits": (replace(DRIFTED, new_labels=0), NEEDS, Plan.WAIT_FOR_LABELS),
    "one label short waits": (replace(DRIFTED, new_labels=666), NEEDS, Plan.WAIT_FOR_LABELS),
    "enough new labels launch": (replace(DRIFTED, new_labels=667), NEEDS, Plan.LAUNCH_TRAINER),
    "uncounted labels wait": (replace(DRIFTED, new_labels=None), NEEDS, Plan.WAIT_FOR_LABELS),
    "an estimated degradation waits too": (
        replace(STEADY, estimated_mae=0.5, estimated_rows=2000, new_labels=10),
        NEEDS,
        Plan.WAIT_FOR_LABELS,
    ),
    "a live degradation waits too": (
        replace(STEADY, live_mae=0.9, new_labels=300),
        NEEDS,
        Plan.WAIT_FOR_LABELS,
    ),
    "a rollback never waits for labels": (
        replace(DRIFTED, rollback=WORSE, new_labels=0),
        NEEDS,
        Plan.ROLL_BACK,
    ),
    "nothing to launch: nothing to wait for": (replace(STEADY, new_labels=0), NEEDS, Plan.NOTHING),
    "a signal that only alerts does not wait": (
        replace(DRIFTED, new_labels=0),
        replace(NEEDS, retrain_on=frozenset({RetrainSignal.LIVE_DEGRADATION})),
        Plan.NOTHING,
    ),
    "0 turns the rule off": (replace(DRIFTED, new_labels=None), LIMITS, Plan.LAUNCH_TRAINER),
}


@pytest.mark.parametrize("case", LABEL_CASES.values(), ids=LABEL_CASES.keys())
def test_the_new_labels_rule(case: tuple[Measured, Limits, Plan]) -> None:
    measured, limits, expected = case
    verdict = judge(measured, limits)
    assert verdict.plan is expected
    waits = expected is Plan.WAIT_FOR_LABELS
    assert verdict.detail.startswith(("drift", "estimated", "live")) == waits
    assert any("waiting for labels" in reason for reason in verdict.reasons) == waits


def test_waiting_says_which_signal_and_how_many_labels() -> None:
    verdict = judge(replace(DRIFTED, new_labels=12), NEEDS)
    assert verdict.detail == "drift; waiting for labels: 12 of 667"
    assert verdict.status is RunStatus.DRIFT and verdict.triggers == (Trigger.PSI,)
    unknown = judge(replace(DRIFTED, estimated_mae=0.5, estimated_rows=2000), NEEDS)
    assert unknown.detail == "drift, estimated_degradation; waiting for labels: ? of 667"
    launch = judge(replace(DRIFTED, new_labels=700), NEEDS)
    assert launch.reasons[-1] == "700 labelled rows newer than any model trained on (667 needed): launch"


def test_hold_for_labels_alone() -> None:
    signals = {RetrainSignal.DRIFT: True}
    plan, finding = hold_for_labels(Plan.LAUNCH_TRAINER, signals, replace(DRIFTED, new_labels=5), NEEDS)
    assert plan is Plan.WAIT_FOR_LABELS and finding.active and finding.triggers == ()
    plan, finding = hold_for_labels(Plan.ROLL_BACK, signals, replace(DRIFTED, new_labels=5), NEEDS)
    assert plan is Plan.ROLL_BACK and not finding.active and finding.reasons == ()


def test_the_default_is_what_the_gate_needs() -> None:
    """RETRAIN_MIN_NEW_LABELS = ceil(GATE_MIN_RECENT_ROWS / TRAIN_RECENT_HOLDOUT_FRACTION), 200 / 0.3."""
    from services.monitor.settings import MonitorSettings
    from services.trainer.settings import TrainerSettings

    trainer = TrainerSettings()
    needed = math.ceil(trainer.gate_min_recent_rows / trainer.train_recent_holdout_fraction)
    assert MonitorSettings().retrain_min_new_labels == needed == 667
    assert Limits.of(MonitorSettings()).retrain_min_new_labels == 667
