"""The California housing data set and the standard split every model is judged on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.common.features import FEATURE_NAMES, matrix_problems

HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 42


class DatasetUnavailable(RuntimeError):
    """The data set is neither cached nor downloadable."""


@dataclass(frozen=True)
class Dataset:
    """Features (schema order) and target (100k USD) of the full set, split 80/20 with seed 42."""

    x_train: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.float64]
    x_holdout: npt.NDArray[np.float64]
    y_holdout: npt.NDArray[np.float64]

    @property
    def rows(self) -> int:
        return len(self.y_train) + len(self.y_holdout)


def load_dataset(data_home: Path | None = None) -> Dataset:
    """Load the data set with scikit-learn's own loader and split it the standard way.

    The loader honours ``SCIKIT_LEARN_DATA`` (or ``data_home``) and downloads only when the cache is
    missing; offline without a cache it raises :class:`DatasetUnavailable` naming the fix.
    """
    # Here, not at the top: every command imports this module for DatasetUnavailable, and scikit-learn
    # costs ~1.1 s to import (the monitor's whole run has a 3 s budget).
    from sklearn.datasets import fetch_california_housing
    from sklearn.model_selection import train_test_split

    try:
        bunch = fetch_california_housing(data_home=str(data_home) if data_home else None, as_frame=True)
    except OSError as error:  # URLError is an OSError: no cache and no network
        raise DatasetUnavailable(
            "cannot load the California housing data set: no cached copy and no network "
            f"({error}). Set SCIKIT_LEARN_DATA to a folder holding cal_housing_py3.pkz "
            "or connect to the internet once."
        ) from error
    frame = bunch.frame
    x = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    y = frame[bunch.target_names[0]].to_numpy(dtype=np.float64)
    problems = matrix_problems(x, list(FEATURE_NAMES))
    if problems:
        raise DatasetUnavailable(f"the data set breaks the feature schema: {'; '.join(problems)}")
    x_train, x_holdout, y_train, y_holdout = train_test_split(
        x, y, test_size=HOLDOUT_FRACTION, random_state=SPLIT_SEED
    )
    return Dataset(x_train, y_train, x_holdout, y_holdout)
