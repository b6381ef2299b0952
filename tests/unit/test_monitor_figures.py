"""The monitor's figures are finite or absent: an undefined score or MAE is None and never decides."""

from __future__ import annotations

import math

import pytest

from services.monitor.evidently_drift import column_test


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
