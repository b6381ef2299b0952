"""What a candidate was trained on, as two digests recorded at registration: its data and its recipe.

Two candidates with both digests equal are twins (the same rows, weights and model): the gate refuses
a twin of the champion, since retraining on nothing new cannot be evidence of anything. A new recipe
on the same rows is no twin: the gate judges it on the holdout like any other candidate.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator

TAG_DATA_DIGEST = "train.data_digest"
TAG_RECIPE_DIGEST = "train.recipe_digest"


def data_digest(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], weights: npt.NDArray[np.float64] | None
) -> str:
    """SHA-256 of the training matrix, prices and sample weights (row order included), as hex."""
    digest = hashlib.sha256()
    for part in (x, y, np.ones(len(y)) if weights is None else weights):
        array = np.ascontiguousarray(part, dtype=np.float64)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def recipe_digest(model: BaseEstimator) -> str:
    """SHA-256 of the model's class names and parameters (nested estimators by their own parameters)."""
    params = model.get_params(deep=True)
    parts = [type(model).__qualname__] + [
        f"{name}={type(value).__qualname__ if hasattr(value, 'get_params') else repr(value)}"
        for name, value in sorted(params.items())
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
