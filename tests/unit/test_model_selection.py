"""The model-selection rule as a table of cases, and the served model's values inside the searched grid."""

from __future__ import annotations

import pytest

from benchmarks.model_selection import BEFORE, Candidate, Scored, candidates, choose, current


def _scored(name: str, mae: float) -> Scored:
    return Scored(Candidate(True, {"name": name}), mae=mae, mae_sd=0.0, r2=0.0, seconds=0.0)


@pytest.mark.parametrize(
    ("maes", "chosen"),
    [
        ({"a": 0.30, "b": 0.28, "c": 0.29}, "b"),  # the lowest out-of-fold MAE
        ({"a": 0.28, "b": 0.28}, "a"),  # a tie: the first in the grid
        ({"a": 0.31}, "a"),
    ],
)
def test_the_lowest_cross_validated_mae_is_chosen(maes: dict[str, float], chosen: str) -> None:
    assert choose([_scored(name, mae) for name, mae in maes.items()]).candidate.params["name"] == chosen


def test_nothing_scored_is_refused() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        choose([])


def test_the_served_values_are_a_searched_candidate_no_larger_than_before() -> None:
    grid = candidates()
    assert current() in grid  # model.PARAMS came out of this search, not from elsewhere
    for candidate in grid:
        assert candidate.params["max_iter"] <= BEFORE["params"]["max_iter"]
        assert candidate.params["max_leaf_nodes"] <= BEFORE["params"]["max_leaf_nodes"]
