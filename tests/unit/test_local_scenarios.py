"""Scenario sampling: which rows a simulated client sends and what they sell for (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.features import FEATURE_NAMES
from services.common.profile import build_profile
from services.local.scenarios import (
    HIGH_INCOME_QUANTILE,
    MED_INC,
    high_income_mask,
    sample_indices,
    scenario_spec,
    scenario_traffic,
    true_prices_usd,
)


def psi(expected: list[float], actual: list[float]) -> float:
    e = np.clip(np.asarray(expected), 1e-4, None)
    a = np.clip(np.asarray(actual), 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=(2000, len(FEATURE_NAMES)))
    y = rng.uniform(0.5, 5.0, size=2000)
    return x, y


def test_unknown_scenario_and_bad_factor_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_spec("sideways")
    with pytest.raises(ValueError, match="positive"):
        scenario_spec("steady", 0.0)


def test_price_factors() -> None:
    assert scenario_spec("steady").price_factor == 1.0
    assert scenario_spec("concept-shift").price_factor == pytest.approx(1.25)
    both = scenario_spec("covariate-shift", 1.25)
    assert both.high_income_share == pytest.approx(0.9) and both.price_factor == pytest.approx(1.25)
    assert "+25%" in both.describe()
    prices = true_prices_usd(np.array([1.0, 2.5]), scenario_spec("concept-shift"))
    np.testing.assert_allclose(prices, [125_000.0, 312_500.0])


def test_same_seed_same_rows(holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = holdout
    spec = scenario_spec("covariate-shift")
    first = sample_indices(x, spec, 300, np.random.default_rng(7))
    again = sample_indices(x, spec, 300, np.random.default_rng(7))
    other = sample_indices(x, spec, 300, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_steady_sends_each_row_once_before_any_repeats(holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = holdout
    rows = sample_indices(x, scenario_spec("steady"), len(x) + 10, np.random.default_rng(0))
    assert len(rows) == len(x) + 10
    assert len(set(rows[: len(x)].tolist())) == len(x)


def test_covariate_shift_is_mostly_high_income(holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = holdout
    high = high_income_mask(x)
    assert high.mean() == pytest.approx(1 - HIGH_INCOME_QUANTILE, abs=0.01)
    rows = sample_indices(x, scenario_spec("covariate-shift"), 1000, np.random.default_rng(0))
    assert high[rows].mean() == pytest.approx(0.9, abs=0.005)
    # ... and the steady scenario keeps the holdout's mix
    steady = sample_indices(x, scenario_spec("steady"), 1000, np.random.default_rng(0))
    assert high[steady].mean() == pytest.approx(0.3, abs=0.05)


def test_covariate_shift_moves_psi_on_income_only(holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = holdout
    profile = build_profile(x)
    from services.common.profile import bin_shares

    def psi_of(rows: np.ndarray, column: int) -> float:
        name = FEATURE_NAMES[column]
        bins = profile.bins[name]
        return psi(bins.expected, bin_shares(x[rows, column], bins.edges))

    shifted = sample_indices(x, scenario_spec("covariate-shift"), 1000, np.random.default_rng(0))
    steady = sample_indices(x, scenario_spec("steady"), 1000, np.random.default_rng(0))
    assert psi_of(shifted, MED_INC) > 1.0
    assert psi_of(steady, MED_INC) < 0.05
    # the other columns are independent of income in this synthetic set: they barely move
    assert max(psi_of(shifted, c) for c in range(len(FEATURE_NAMES)) if c != MED_INC) < 0.1


def test_traffic_bodies_follow_the_schema(holdout: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = holdout
    rows, prices = scenario_traffic(x, y, scenario_spec("concept-shift"), 5, np.random.default_rng(3))
    assert len(rows) == len(prices) == 5
    assert all(list(row) == list(FEATURE_NAMES) for row in rows)
    for row, price in zip(rows, prices, strict=True):
        index = int(np.flatnonzero((x == [row[n] for n in FEATURE_NAMES]).all(axis=1))[0])
        assert price == pytest.approx(y[index] * 125_000)
