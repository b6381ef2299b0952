"""The demo reads the gate's evidence defensively: what is there is shown, what is not never fails."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.local.evidence import describe_evidence

RECENT = {
    "comparison": "recent",
    "test": "superiority",
    "rows": 750,
    "candidate_mae": 0.40,
    "champion_mae": 0.55,
    "difference": -0.15,
    "lower": -0.18,
    "upper": -0.12,
    "margin": 0.011,
    "relative_margin": 0.02,
    "mde": 0.02,
    "passed": True,
}
CASES: dict[str, tuple[Any, list[str]]] = {
    "no figures": (None, []),
    "an event from before the evidence": ({"holdout_mae": 0.29}, []),
    "evidence that is no mapping or list": ({"evidence": "n/a"}, []),
    "a full comparison": (
        {"evidence": {"recent": RECENT}},
        [
            "recent: n=750, Δ MAE -15.0 k USD, 95 % [-18.0 k, -12.0 k], margin 1.1 k, MDE 2.0 k, shown",
        ],
    ),
    "missing and null figures": (
        {"evidence": {"holdout": {"rows": 4128, "difference": None, "upper": 0.001, "passed": False}}},
        ["holdout: n=4128, 95 % […, +0.1 k], not shown"],
    ),
    "a non-finite figure is left out": (
        {"evidence": [{"comparison": "holdout", "difference": math.nan, "mde": "x"}]},
        ["holdout:"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_describe_evidence(case: tuple[Any, list[str]]) -> None:
    figures, expected = case
    assert describe_evidence(figures) == expected
