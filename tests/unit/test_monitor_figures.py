"""The monitor's figures are finite or absent: an undefined score or MAE is None and never decides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.monitor.evidently_drift import column_test
from services.monitor.live_error import LiveError
from services.monitor.rollback_check import _mae, decide_rollback


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_an_evidently_score_that_is_not_finite_is_none_and_not_drift(score: float) -> None:
    test = column_test("Wasserstein distance (normed)", score, 0.1)
    assert test.score is None and not test.drifted
    assert test.as_dict() == {
        "method": "Wasserstein distance (normed)",
        "score": None,
        "threshold": 0.1,
        "drifted": False,
        "undefined": f"Evidently's Wasserstein distance (normed) came out {score!r}",
    }
    assert "undefined" not in column_test("K-S p_value", 0.01, 0.05).as_dict()


def test_the_mae_of_nothing_or_of_a_non_finite_price_is_undefined() -> None:
    assert _mae(np.array([]), np.array([])) is None
    assert _mae(np.array([1.0, math.nan]), np.array([1.0, 2.0])) is None
    assert _mae(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0


def test_an_undefined_live_mae_never_rolls_back_and_says_why() -> None:
    good = LiveError(1, 400, 0.3)
    roll, reason = decide_rollback(LiveError(2, 300, None), good, tolerance=0.1, min_rows=200)
    assert not roll and reason == "the live MAE of v2 is undefined (a logged price is not finite)"
    roll, reason = decide_rollback(
        LiveError(2, 300, 0.9), LiveError(1, 300, None), tolerance=0.1, min_rows=200
    )
    assert not roll and reason == "the MAE of v1 on those rows is undefined (its prices are not finite)"
