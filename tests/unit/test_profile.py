"""The reference profile: PSI bins as SQL's width_bucket draws them, and a bounded sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.common.features import FEATURE_NAMES
from services.common.profile import PSI_BINS, SAMPLE_ROWS, ReferenceProfile, bin_shares, build_profile


def test_bins_are_left_closed_like_width_bucket() -> None:
    # width_bucket(v, ARRAY[1, 2]) is 0 below 1, 1 for 1 <= v < 2, 2 from 2 up.
    assert bin_shares(np.array([0.5, 1.0, 1.5, 2.0, 9.0]), [1.0, 2.0]) == [0.2, 0.4, 0.4]


def test_profile_of_training_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, len(FEATURE_NAMES)))
    profile = build_profile(x)
    assert profile.features == list(FEATURE_NAMES)
    assert len(profile.sample) == SAMPLE_ROWS
    for name in FEATURE_NAMES:
        bins = profile.bins[name]
        assert len(bins.edges) == PSI_BINS - 1
        assert np.allclose(bins.expected, 1 / PSI_BINS, atol=0.002)
    assert ReferenceProfile.load(profile.save(tmp_path / "p.json")) == profile


def test_constant_feature_keeps_one_edge() -> None:
    x = np.ones((100, len(FEATURE_NAMES)))
    profile = build_profile(x)
    assert profile.bins["MedInc"].edges == [1.0]
    assert profile.bins["MedInc"].expected == [0.0, 1.0]
