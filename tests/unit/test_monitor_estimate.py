"""The estimate's decisions as pure functions: the band rule (and the old rule without a band), and the
concept-shift flag where labels exist: a table of cases."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from services.common.estimate_band import EstimateBand
from services.common.vocabulary import Plan, RunStatus, Trigger
from services.monitor.concept import ConceptFigures
from services.monitor.decide.estimate import judge_concept_shift, judge_estimate
from services.monitor.decide.rule import Limits, Measured
from services.monitor.decide.verdict import judge

LIMITS = Limits(
    drift_min_rows=500,
    psi_threshold=0.2,
    drift_share_threshold=0.5,
    live_mae_tolerance=0.25,
    rollback_min_rows=200,
)
# mean 0.303, SD 0.009: the band [0.276, 0.330]; realized 0.294 on the same chunks (bias 0.97)
BAND = EstimateBand(0.303, 0.009, 0.294, 0.015, 200, 500, "holdout", 4128)
WINDOW = Measured(
    rows=800,
    psi={"MedInc": 0.01},
    drift_share=0.0,
    reference_mae=0.29,
    estimated_mae=0.31,
    estimated_rows=800,
    estimate_se=0.007,
    estimate_band=BAND,
)


def concept(ratio: float, rows: int = 400, se: float = 0.05) -> ConceptFigures:
    return ConceptFigures(rows, realized_mae=0.3 * ratio, estimated_mae=0.3, ratio=ratio, ratio_se=se)


@dataclass(frozen=True)
class Case:
    measured: Measured
    active: bool
    says: str  # a phrase of its reason


ESTIMATE_CASES = {
    "inside the band: nothing": Case(WINDOW, False, "within its band [0.276, 0.330]"),
    "above the band: degraded": Case(replace(WINDOW, estimated_mae=0.331), True, "above its band"),
    "the SE is reported beside the estimate": Case(
        WINDOW, False, "estimated MAE 0.310 (SE 0.007) on 800 rows"
    ),
    "below the band is said, never a degradation": Case(
        replace(WINDOW, estimated_mae=0.25), False, "easier rows than the reference"
    ),
    "within the old 20% but above the band: the band decides": Case(
        replace(WINDOW, estimated_mae=0.34), True, "above its band"
    ),
    "without a band the old rule, and it says so": Case(
        replace(WINDOW, estimate_band=None, estimated_mae=0.34), False, "no estimate band: the old rule"
    ),
    "without a band, beyond ESTIMATED_MAE_TOLERANCE: degraded": Case(
        replace(WINDOW, estimate_band=None, estimated_mae=0.35), True, "beyond 20% of the training MAE 0.290"
    ),
    "a band from other chunk sizes is named": Case(
        replace(WINDOW, estimate_band=replace(BAND, chunk_rows=300)), False, "DRIFT_MIN_ROWS is 500"
    ),
}


@pytest.mark.parametrize("case", ESTIMATE_CASES.values(), ids=ESTIMATE_CASES.keys())
def test_the_estimate_against_its_band(case: Case) -> None:
    found = judge_estimate(case.measured, LIMITS)
    assert found.active is case.active
    assert found.triggers == ((Trigger.ESTIMATED_DEGRADATION,) if case.active else ())
    assert any(case.says in reason for reason in found.reasons), found.reasons


@pytest.mark.parametrize(
    "measured",
    [
        replace(WINDOW, rows=499, estimated_mae=0.9),  # too few rows to judge
        replace(WINDOW, estimated_mae=None),  # no error model
        replace(WINDOW, estimate_band=None, reference_mae=None, estimated_mae=0.9),  # nothing to compare
    ],
)
def test_no_judgement_without_a_window_an_estimate_or_a_yardstick(measured: Measured) -> None:
    assert judge_estimate(measured, LIMITS) == judge_estimate(Measured(rows=0), LIMITS)
    assert not judge_estimate(measured, LIMITS).reasons


CONCEPT_CASES = {
    "realized as estimated: nothing": Case(replace(WINDOW, concept=concept(0.97)), False, "no concept shift"),
    "prices +25%: realized is 1.9x the estimate": Case(
        replace(WINDOW, concept=concept(1.9)), True, "a concept shift"
    ),
    "realized well below the estimate is a concept shift too": Case(
        replace(WINDOW, concept=concept(0.7)), True, "a concept shift"
    ),
    "outside [0.9, 1.1] but within 3 SE of 1: noise": Case(
        replace(WINDOW, concept=concept(1.2, se=0.08)), False, "within 3 SE of 1"
    ),
    "read against the estimate's bias: 1.10 raw is 1.13 against 0.97": Case(
        replace(WINDOW, concept=concept(1.10, se=0.01)), True, "1.13 against the estimate's 0.97"
    ),
    "without a band, the raw ratio": Case(
        replace(WINDOW, estimate_band=None, concept=concept(1.10, se=0.01)), False, "no concept shift"
    ),
    "too few labelled rows: said, not called": Case(
        replace(WINDOW, concept=concept(1.9, rows=150)), False, "200 needed to call a concept shift"
    ),
}


@pytest.mark.parametrize("case", CONCEPT_CASES.values(), ids=CONCEPT_CASES.keys())
def test_the_concept_shift_where_labels_exist(case: Case) -> None:
    found = judge_concept_shift(case.measured, LIMITS)
    assert found.active is case.active
    assert found.triggers == ((Trigger.CONCEPT_SHIFT,) if case.active else ())
    assert any(case.says in reason for reason in found.reasons), found.reasons


def test_no_labels_no_concept_reason() -> None:
    assert not judge_concept_shift(WINDOW, LIMITS).reasons


def test_in_the_verdict_a_concept_shift_alerts_and_launches_nothing() -> None:
    verdict = judge(replace(WINDOW, concept=concept(1.9)), LIMITS)
    assert verdict.concept_shift and Trigger.CONCEPT_SHIFT in verdict.triggers
    assert verdict.plan is Plan.NOTHING and verdict.status is RunStatus.OK
