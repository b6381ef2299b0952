"""The preset's per-column tests in numpy give Evidently's own figures on real windows, steady and shifted."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.dataset import Dataset
from services.common.profile import build_profile
from services.monitor.column_drift import drift_tests
from services.monitor.evidently_drift import run_drift_preset


@pytest.mark.parametrize(("rows", "shift"), [(1500, 1.0), (5000, 1.0), (2000, 1.5), (5000, 1.1)])
def test_the_numpy_tests_equal_evidently(dataset: Dataset, rows: int, shift: float) -> None:
    reference = np.asarray(build_profile(dataset.x_train).sample, dtype=np.float64)
    window = dataset.x_holdout[np.random.default_rng(rows).integers(0, len(dataset.x_holdout), rows)]
    window[:, 0] *= shift
    ours = drift_tests(reference, window)
    theirs = run_drift_preset(reference, window, drift_share=0.5)
    assert ours is not None
    assert ours.drift_share == theirs.drift_share and ours.drifted_columns == theirs.drifted_columns
    for name, test in ours.columns.items():
        assert test.method == theirs.tests[name].method
        assert test.drifted == theirs.tests[name].drifted
        assert test.score == pytest.approx(theirs.tests[name].score, abs=1e-12)


def test_other_tests_are_left_to_evidently(dataset: Dataset) -> None:
    reference = np.asarray(build_profile(dataset.x_train).sample, dtype=np.float64)
    assert drift_tests(reference[:1000], dataset.x_holdout[:2000]) is None  # K-S territory
    constant = dataset.x_holdout[:2000].copy()
    constant[:, 1] = 7.0
    few = reference.copy()
    few[:, 1] = 7.0
    assert drift_tests(few, constant) is None  # Jensen-Shannon territory
