"""The validation gate as a pure function of figures and thresholds."""

from __future__ import annotations

from services.trainer.evaluate import Metrics
from services.trainer.gate import Figures, Thresholds, decide

LIMITS = Thresholds(
    min_r2=0.75, max_mae=0.45, holdout_tolerance=0.02, shifted_holdout_tolerance=0.25, min_recent_rows=200
)


def metrics(mae: float, r2: float = 0.85, rows: int = 4000) -> Metrics:
    return Metrics(mae=mae, r2=r2, rmse=mae * 1.5, rows=rows)


def test_first_candidate_above_the_floor_becomes_champion() -> None:
    decision = decide(Figures(metrics(0.28)), None, LIMITS)
    assert decision.passed
    assert any("no champion yet" in reason for reason in decision.reasons)


def test_below_the_floor_is_rejected_even_without_a_champion() -> None:
    decision = decide(Figures(metrics(0.9, r2=0.1)), None, LIMITS)
    assert not decision.passed
    assert any("below the floor" in reason for reason in decision.reasons)
    assert any("above the ceiling" in reason for reason in decision.reasons)


def test_sanity_problems_reject() -> None:
    decision = decide(Figures(metrics(0.28), problems=["3 of 202 probe prices are negative"]), None, LIMITS)
    assert not decision.passed and decision.reasons == ["3 of 202 probe prices are negative"]


def test_no_finite_figures_reject() -> None:
    assert not decide(Figures(None), None, LIMITS).passed


def test_without_recent_rows_the_holdout_decides_within_tolerance() -> None:
    champion = Figures(metrics(0.30))
    assert decide(Figures(metrics(0.305)), champion, LIMITS).passed  # +1.7 %
    rejected = decide(Figures(metrics(0.31)), champion, LIMITS)  # +3.3 %
    assert not rejected.passed
    assert any("beyond 2%" in reason for reason in rejected.reasons)


def test_enough_recent_rows_decide() -> None:
    champion = Figures(metrics(0.30), recent=metrics(0.60, rows=500))
    better_recent = Figures(metrics(0.34), recent=metrics(0.40, rows=500))  # holdout +13 %, within 25 %
    assert decide(better_recent, champion, LIMITS).passed
    worse_recent = Figures(metrics(0.29), recent=metrics(0.61, rows=500))
    assert not decide(worse_recent, champion, LIMITS).passed


def test_recent_rows_cannot_excuse_a_collapse_on_the_holdout() -> None:
    champion = Figures(metrics(0.30), recent=metrics(0.60, rows=500))
    collapsed = Figures(metrics(0.40), recent=metrics(0.30, rows=500))  # +33 % on the holdout
    assert not decide(collapsed, champion, LIMITS).passed


def test_too_few_recent_rows_do_not_decide() -> None:
    champion = Figures(metrics(0.30), recent=metrics(0.20, rows=50))
    candidate = Figures(metrics(0.30), recent=metrics(0.90, rows=50))
    decision = decide(candidate, champion, LIMITS)
    assert decision.passed
    assert any("only 50 recent labelled rows" in reason for reason in decision.reasons)
