"""The validation gate as a pure function of figures and thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from services.trainer.evaluate import Metrics, evaluate
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


def test_undefined_holdout_figures_reject_with_the_reason() -> None:
    why = "7 of 4000 predictions are not finite"
    holdout = Metrics(None, None, None, 4000, {"mae": why, "r2": why, "rmse": why})
    decision = decide(Figures(holdout), None, LIMITS)
    assert not decision.passed
    assert decision.reasons == [f"the candidate's holdout MAE and R² are undefined ({why})"]


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


def undefined_r2(mae: float, rows: int) -> Metrics:
    why = f"fewer than two distinct true prices ({rows} rows, 1 distinct)"
    return Metrics(mae=mae, r2=None, rmse=mae, rows=rows, undefined={"r2": why})


def no_rows() -> Metrics:
    return Metrics(None, None, None, 0, {name: "no rows" for name in ("mae", "r2", "rmse")})


# (candidate recent, champion recent, the words the fallback reason must hold): an undefined recent figure
# never decides; the holdout does, and the reasons say which figure was undefined and why.
UNDEFINED_RECENT = [
    pytest.param(no_rows(), no_rows(), ["only 0 recent labelled rows (< 200)"], id="no rows"),
    pytest.param(
        undefined_r2(0.2, 1),
        undefined_r2(0.9, 1),
        ["only 1 recent labelled rows", "the candidate's recent R² is undefined (fewer than two distinct"],
        id="one row",
    ),
    pytest.param(
        undefined_r2(0.2, 2),
        undefined_r2(0.9, 2),
        ["only 2 recent labelled rows", "the champion's recent R² is undefined (fewer than two distinct"],
        id="two equal prices",
    ),
    pytest.param(
        undefined_r2(0.2, 500),
        metrics(0.9, rows=500),
        ["not enough recent labelled rows (500)", "the candidate's recent R² is undefined"],
        id="many rows of one price",
    ),
    pytest.param(
        metrics(0.2, rows=500),
        Metrics(
            None, None, None, 500, {n: "3 of 500 predictions are not finite" for n in ("mae", "r2", "rmse")}
        ),
        ["the champion's recent MAE, R² and RMSE are undefined (3 of 500 predictions are not finite)"],
        id="champion not finite",
    ),
    pytest.param(
        metrics(0.2, rows=500), None, ["the champion's recent figures were not measured"], id="unmeasured"
    ),
]


@pytest.mark.parametrize(("recent", "champion_recent", "words"), UNDEFINED_RECENT)
def test_undefined_recent_figures_leave_the_decision_to_the_holdout(
    recent: Metrics, champion_recent: Metrics | None, words: list[str]
) -> None:
    champion = Figures(metrics(0.30), recent=champion_recent)
    within = decide(Figures(metrics(0.305), recent=recent), champion, LIMITS)  # holdout +1.7 %
    beyond = decide(Figures(metrics(0.32), recent=recent), champion, LIMITS)  # +6.7 %: within 25 %, not 2 %
    assert within.passed and not beyond.passed
    fallback = [reason for reason in within.reasons if reason.endswith(": the reference holdout decides")]
    assert len(fallback) == 1, within.reasons
    assert all(word in fallback[0] for word in words), fallback
    assert not any("on 500 recent labelled rows" in reason for reason in within.reasons)


def test_an_undefined_champion_holdout_mae_does_not_block_a_sound_candidate() -> None:
    why = "4000 of 4000 predictions are not finite"
    champion = Figures(Metrics(None, None, None, 4000, {"mae": why, "r2": why, "rmse": why}))
    decision = decide(Figures(metrics(0.30)), champion, LIMITS)
    assert decision.passed
    assert any(f"the champion's holdout MAE is undefined ({why})" in reason for reason in decision.reasons)


class Constant:
    """A model that prices every row at one value (NaN too)."""

    def __init__(self, price: float) -> None:
        self.price = price

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.price)


@pytest.mark.parametrize(
    ("y", "price", "defined", "why"),
    [
        pytest.param([], 1.0, set(), "no rows", id="no rows"),
        pytest.param(
            [2.0], 1.0, {"mae", "rmse"}, "fewer than two distinct true prices (1 rows, 1 distinct)", id="one"
        ),
        pytest.param(
            [2.0, 2.0],
            1.0,
            {"mae", "rmse"},
            "fewer than two distinct true prices (2 rows, 1 distinct)",
            id="equal",
        ),
        pytest.param([1.0, 3.0], 2.0, {"mae", "r2", "rmse"}, "", id="different"),
        pytest.param([1.0, 3.0], float("nan"), set(), "2 of 2 predictions are not finite", id="nan model"),
    ],
)
def test_evaluate_says_which_figure_is_undefined_and_why(
    y: list[float], price: float, defined: set[str], why: str
) -> None:
    figures = evaluate(Constant(price), np.zeros((len(y), 8)), np.array(y, dtype=np.float64))
    values = {"mae": figures.mae, "r2": figures.r2, "rmse": figures.rmse}
    assert {name for name, value in values.items() if value is not None} == defined
    assert all(np.isfinite(value) for value in values.values() if value is not None)
    assert figures.undefined == {name: why for name in values if name not in defined}
