"""The derived features as a scikit-learn pipeline step: :class:`RotatedCoordinates`.

A small stateless estimator rather than a ``FunctionTransformer``: its one parameter (the angles) is
plain data, so the pickled pipeline keeps its own angles, and ``get_params`` reads the same in every
process (a function's repr holds its memory address, which made the trainer's recipe digest differ
between two runs of the same recipe). Kept apart from :mod:`services.common.derived_features`, which
the compiled trees use without importing scikit-learn (~1.1 s in a monitor run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

from services.common.derived_features import (
    ROTATED_COORDINATES,
    ROTATION_DEGREES,
    add_rotated_coordinates,
    derived_names,
)


class RotatedCoordinates(TransformerMixin, BaseEstimator):
    """Appends latitude/longitude rotated by each of ``degrees`` to the eight raw features."""

    def __init__(self, degrees: Sequence[float] = ROTATION_DEGREES) -> None:
        self.degrees = degrees

    def fit(self, x: npt.NDArray[np.float64], y: Any = None) -> RotatedCoordinates:
        """Nothing to learn: the map is fixed. Checks the rows' shape, as ``transform`` does."""
        add_rotated_coordinates(np.asarray(x, dtype=np.float64)[:1], self.degrees)
        return self

    def transform(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return add_rotated_coordinates(x, self.degrees)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.str_]:
        return np.asarray(derived_names(self.degrees), dtype=object)

    def compiled_attributes(self) -> dict[str, object]:
        """What a compiled checkpoint records to repeat this step before its trees."""
        return {"transform": ROTATED_COORDINATES, "degrees": [float(d) for d in self.degrees]}
