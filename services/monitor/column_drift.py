"""The per-column drift tests of Evidently's DataDriftPreset, computed in numpy without importing Evidently.

Importing Evidently 0.7.23 costs ~3.4 s here (it loads its LLM, UI and legacy classification modules,
nltk and scipy.stats with it), more than a whole monitor run's budget (3 s). For our data the preset's
choice is fixed: a reference of more than 1,000 rows and numerical columns with more than 5 distinct
values get the Wasserstein distance normed by the reference's standard deviation (``max(std, 0.001)``,
population std), drifted at or above 0.1; the dataset drifts when the share of drifted columns reaches
the preset's ``drift_share``. That test is ~20 lines of numpy (scipy's ``wasserstein_distance`` with
p = 1: the area between the two empirical CDFs), identical to Evidently's figures to 1e-12
(``tests/integration/test_column_drift.py`` runs both on real windows).

When the preset would choose another test (a reference of 1,000 rows or fewer: K-S; a column of 5 or
fewer distinct values: Jensen-Shannon) :func:`drift_tests` returns None and the run asks Evidently.

Usage::

    tests = drift_tests(reference, current)   # None: run Evidently's preset instead
    tests.drift_share, tests.columns["MedInc"].score
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.features import FEATURE_NAMES
from services.monitor.evidently_drift import ColumnTest, column_test

METHOD = "Wasserstein distance (normed)"  # Evidently's display name, as its report and our rows show it
THRESHOLD = 0.1  # Evidently's default for this test
MIN_REFERENCE_ROWS = 1001  # at or below 1,000 reference rows the preset picks K-S
MIN_DISTINCT = 6  # at or below 5 distinct values the preset picks Jensen-Shannon


@dataclass(frozen=True)
class DriftTests:
    """One test per column in schema order, and the preset's dataset figures."""

    columns: dict[str, ColumnTest]
    drift_share: float
    drifted_columns: int


def wasserstein(u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> float:
    """The first Wasserstein distance between two 1-D samples (scipy.stats.wasserstein_distance)."""
    u_sorted, v_sorted = np.sort(u), np.sort(v)
    values = np.sort(np.concatenate([u_sorted, v_sorted]))
    deltas = np.diff(values)
    u_cdf = np.searchsorted(u_sorted, values[:-1], side="right") / len(u_sorted)
    v_cdf = np.searchsorted(v_sorted, values[:-1], side="right") / len(v_sorted)
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def normed_wasserstein(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> float:
    """Evidently's score: the distance over the reference's population std (at least 0.001)."""
    return wasserstein(reference, current) / max(float(np.std(reference)), 0.001)


def drift_tests(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]) -> DriftTests | None:
    """The preset's tests on two matrices in schema order; None when it would choose another test."""
    if len(reference) < MIN_REFERENCE_ROWS or len(current) == 0:
        return None
    columns: dict[str, ColumnTest] = {}
    for index, name in enumerate(FEATURE_NAMES):
        ref, cur = reference[:, index], current[:, index]
        if len(np.unique(np.concatenate([ref, cur]))) < MIN_DISTINCT:
            return None
        columns[name] = column_test(METHOD, normed_wasserstein(ref, cur), THRESHOLD)
    drifted = sum(test.drifted for test in columns.values())
    return DriftTests(columns, drifted / len(columns), drifted)
