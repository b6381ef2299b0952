"""The validation gate as a pure function of figures and thresholds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from services.trainer.evaluate import Metrics, evaluate
from services.trainer.gate import Decision, Figures, Thresholds, decide
from services.trainer.paired import NON_INFERIORITY, SUPERIORITY, compare

LIMITS = Thresholds(
    min_r2=0.75,
    max_mae=0.45,
    min_recent_rows=200,
    recent_margin=0.02,
    holdout_margin=0.02,
    noninferiority_margin=0.25,
)
HOLDOUT_ROWS = 4000


def metrics(mae: float, r2: float = 0.85, rows: int = HOLDOUT_ROWS) -> Metrics:
    return Metrics(mae=mae, r2=r2, rmse=mae * 1.5, rows=rows)


def errors(mae: float, rows: int, seed: int = 0) -> np.ndarray:
    """Absolute errors of a plausible shape (exponential) whose mean is ``mae``."""
    base = np.random.default_rng(seed).exponential(1.0, rows)
    return base * mae / base.mean()


def pair(
    champion_mae: float, candidate_mae: float, rows: int, *, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(candidate, champion) absolute errors on the same rows: the candidate's follow the champion's
    row by row, scaled to its MAE, with zero-mean noise of ``noise`` (100k USD) per row."""
    champion = errors(champion_mae, rows, seed)
    jitter = np.random.default_rng(seed + 1).normal(0.0, noise, rows)
    candidate = np.abs(champion * candidate_mae / champion_mae + jitter - jitter.mean())
    return candidate, champion


def both(
    holdout: tuple[float, float],
    recent: tuple[float, float] | None = None,
    recent_rows: int = 500,
    digests: tuple[str | None, str | None] = ("a", "b"),
) -> tuple[Figures, Figures]:
    """(candidate, champion) figures from (candidate MAE, champion MAE) on the holdout and recent rows."""
    h_candidate, h_champion = pair(holdout[1], holdout[0], HOLDOUT_ROWS)
    r_candidate = r_champion = None
    if recent is not None:
        r_candidate, r_champion = pair(recent[1], recent[0], recent_rows, seed=7)
    candidate = Figures(
        metrics(float(h_candidate.mean())),
        metrics(float(r_candidate.mean()), rows=recent_rows) if r_candidate is not None else None,
        holdout_errors=h_candidate,
        recent_errors=r_candidate,
        training_digest=digests[0],
    )
    champion = Figures(
        metrics(float(h_champion.mean())),
        metrics(float(r_champion.mean()), rows=recent_rows) if r_champion is not None else None,
        holdout_errors=h_champion,
        recent_errors=r_champion,
        training_digest=digests[1],
    )
    return candidate, champion


def test_first_candidate_above_the_floor_becomes_champion() -> None:
    decision = decide(Figures(metrics(0.28)), None, LIMITS)
    assert decision.passed and decision.evidence == []
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


# (holdout MAEs, recent MAEs or None, promoted?, which comparisons fail): candidate first, champion second.
CASES = [
    pytest.param((0.28, 0.30), None, True, set(), id="holdout only: 7 % better"),
    pytest.param((0.30, 0.30), None, False, {"holdout"}, id="holdout only: equal (A/A)"),
    pytest.param((0.297, 0.30), None, False, {"holdout"}, id="holdout only: 1 % better, within the margin"),
    pytest.param((0.305, 0.30), None, False, {"holdout"}, id="holdout only: 1.7 % worse"),
    pytest.param((0.32, 0.30), (0.50, 0.60), True, set(), id="recent 17 % better, holdout +7 %"),
    pytest.param((0.30, 0.30), (0.60, 0.60), False, {"recent"}, id="recent equal (A/A)"),
    pytest.param((0.30, 0.30), (0.61, 0.60), False, {"recent"}, id="recent worse"),
    pytest.param((0.30, 0.30), (0.594, 0.60), False, {"recent"}, id="recent 1 % better, within the margin"),
    pytest.param((0.40, 0.30), (0.30, 0.60), False, {"holdout"}, id="recent better, holdout collapses +33 %"),
]


@pytest.mark.parametrize(("holdout", "recent", "promoted", "failed"), CASES)
def test_the_paired_comparisons_decide(
    holdout: tuple[float, float], recent: tuple[float, float] | None, promoted: bool, failed: set[str]
) -> None:
    candidate, champion = both(holdout, recent)
    decision = decide(candidate, champion, LIMITS)
    assert decision.passed is promoted, decision.reasons
    assert {e.comparison for e in decision.evidence} == ({"recent", "holdout"} if recent else {"holdout"})
    assert {e.comparison for e in decision.evidence if not e.passed} == failed
    tests = {e.comparison: e.test for e in decision.evidence}
    assert tests["holdout"] == ("non-inferiority" if recent else "superiority")
    for evidence in decision.evidence:
        assert evidence.lower <= evidence.difference <= evidence.upper
        assert evidence.mde > 0 and evidence.margin > 0
        assert all(np.isfinite(v) for v in evidence.as_dict().values() if isinstance(v, float))
        assert any(
            reason.startswith(f"{evidence.comparison}, {evidence.rows} rows") for reason in decision.reasons
        )


def test_a_twin_never_replaces_the_champion() -> None:
    candidate, champion = both((0.20, 0.30), (0.30, 0.60), digests=("same", "same"))
    decision = decide(candidate, champion, LIMITS)
    assert not decision.passed and decision.evidence == []
    assert any("a twin never replaces the champion" in reason for reason in decision.reasons)
    # Unknown digests (versions registered before the digest was recorded) are judged on their figures.
    candidate, champion = both((0.20, 0.30), (0.30, 0.60), digests=(None, None))
    assert decide(candidate, champion, LIMITS).passed


def test_without_per_row_errors_there_is_no_comparison() -> None:
    decision = decide(Figures(metrics(0.20)), Figures(metrics(0.30)), LIMITS)
    assert not decision.passed
    assert any("per-row errors were not measured" in reason for reason in decision.reasons)


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
    def judged(holdout: tuple[float, float]) -> Decision:
        candidate, champion = both(holdout)
        # Recent errors are present and strongly favour the candidate: they must not be used.
        recent_errors = errors(0.1, 500)
        candidate = replace(candidate, recent=recent, recent_errors=recent_errors)
        champion = replace(champion, recent=champion_recent, recent_errors=recent_errors * 3)
        return decide(candidate, champion, LIMITS)

    better, equal = judged((0.28, 0.30)), judged((0.30, 0.30))
    assert better.passed and not equal.passed
    fallback = [reason for reason in better.reasons if "the reference holdout decides" in reason]
    assert len(fallback) == 1, better.reasons
    assert all(word in fallback[0] for word in words), fallback
    assert [e.comparison for e in better.evidence] == ["holdout"]


def test_an_undefined_champion_holdout_mae_does_not_block_a_sound_candidate() -> None:
    why = "4000 of 4000 predictions are not finite"
    champion = Figures(Metrics(None, None, None, 4000, {"mae": why, "r2": why, "rmse": why}))
    decision = decide(Figures(metrics(0.30)), champion, LIMITS)
    assert decision.passed
    assert any(f"the champion's holdout MAE is undefined ({why})" in reason for reason in decision.reasons)


def test_the_bootstrap_is_reproducible_and_refuses_bad_input() -> None:
    candidate, champion = pair(0.30, 0.29, 300)
    first = compare("recent", SUPERIORITY, candidate, champion, 0.02)
    assert first == compare("recent", SUPERIORITY, candidate, champion, 0.02)
    assert first.rows == 300 and first.relative_margin == 0.02
    assert first.margin == pytest.approx(0.02 * champion.mean())
    assert first.difference == pytest.approx(candidate.mean() - champion.mean())
    # MDE at 80 % power, one-sided 5 %: (1.645 + 0.842) x sd / sqrt(n).
    sd = (candidate - champion).std(ddof=1)
    assert first.mde == pytest.approx(2.4865 * sd / np.sqrt(300), rel=1e-3)
    one = compare("recent", NON_INFERIORITY, np.array([0.2]), np.array([0.3]), 0.1)
    assert (one.lower, one.upper, one.mde, one.passed) == pytest.approx((-0.1, -0.1, 0.0, True))
    with pytest.raises(ValueError, match="one length"):
        compare("recent", SUPERIORITY, candidate, champion[:-1], 0.02)
    with pytest.raises(ValueError, match="one length"):
        compare("recent", SUPERIORITY, np.array([]), np.array([]), 0.02)
    with pytest.raises(ValueError, match="finite"):
        compare("recent", SUPERIORITY, np.array([np.nan, 1.0]), np.array([1.0, 1.0]), 0.02)


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
