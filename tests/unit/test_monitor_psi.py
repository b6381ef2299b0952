"""PSI and the monitor's other pure decisions, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.common.dataset import Dataset
from services.common.features import FEATURE_NAMES
from services.common.profile import build_profile
from services.monitor.evidently_drift import column_drifted
from services.monitor.live_error import degraded
from services.monitor.psi import EPSILON, psi


def test_psi_matches_a_hand_computed_value() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    assert psi([0.5, 0.5], [90, 10]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5))
    # three bins, shares 0.2 / 0.3 / 0.5 against counts 30 / 30 / 40
    expected = (0.3 - 0.2) * math.log(0.3 / 0.2) + 0 + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert psi([0.2, 0.3, 0.5], [30, 30, 40]) == pytest.approx(expected)


def test_an_empty_bin_costs_a_finite_amount() -> None:
    value = psi([0.5, 0.5], [100, 0])
    assert value == pytest.approx((1 - 0.5) * math.log(2) + (EPSILON - 0.5) * math.log(EPSILON / 0.5))
    assert math.isfinite(value)


def test_psi_refuses_mismatched_or_empty_counts() -> None:
    with pytest.raises(ValueError, match="bins"):
        psi([0.5, 0.5], [1, 2, 3])
    with pytest.raises(ValueError, match="no observations"):
        psi([0.5, 0.5], [0, 0])


def _counts(values: np.ndarray, edges: list[float]) -> list[int]:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).tolist()


def test_identical_data_gives_psi_near_zero_and_the_holdout_stays_low(dataset: Dataset) -> None:
    profile = build_profile(dataset.x_train)
    for index, name in enumerate(FEATURE_NAMES):
        bins = profile.bins[name]
        assert psi(bins.expected, _counts(dataset.x_train[:, index], bins.edges)) < 1e-9
        assert psi(bins.expected, _counts(dataset.x_holdout[:, index], bins.edges)) < 0.02


def test_a_shifted_income_gives_psi_above_the_threshold(dataset: Dataset) -> None:
    profile = build_profile(dataset.x_train)
    bins = profile.bins["MedInc"]
    assert psi(bins.expected, _counts(dataset.x_holdout[:, 0] * 1.5, bins.edges)) >= 0.2
    # the scenario's covariate shift: mostly high-income districts
    rich = dataset.x_holdout[dataset.x_holdout[:, 0] > np.quantile(dataset.x_holdout[:, 0], 0.6)]
    assert psi(bins.expected, _counts(rich[:, 0], bins.edges)) >= 0.2


def test_evidently_direction_depends_on_the_method() -> None:
    assert column_drifted("K-S p_value", 0.01, 0.05)
    assert not column_drifted("K-S p_value", 0.2, 0.05)
    assert column_drifted("Wasserstein distance (normed)", 0.1, 0.1)
    assert not column_drifted("Wasserstein distance (normed)", 0.05, 0.1)


def test_live_error_degrades_only_with_enough_rows_beyond_tolerance() -> None:
    assert degraded(0.5, 0.3, 300, tolerance=0.25, min_rows=200)
    assert not degraded(0.35, 0.3, 300, tolerance=0.25, min_rows=200)
    assert not degraded(0.9, 0.3, 100, tolerance=0.25, min_rows=200)
    assert not degraded(None, 0.3, 300, tolerance=0.25, min_rows=200)
