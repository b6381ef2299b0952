"""The model: a scikit-learn pipeline fitted on the feature matrix in schema order.

Measured on the standard split (``housing train`` prints it): R² 0.849, MAE 0.293 (100k USD), against the
seed's LinearRegression at R² 0.576. Sized for serving as much as for accuracy: a batch's ``predict``
costs in proportion to the trees, even compiled (16 rows: 230 µs for these 150 trees, 883 µs for 400 trees
at learning rate 0.1, which reach R² 0.855). Fitted on numpy, not a DataFrame, so serving with numpy
rows raises no feature-name warning per call.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

PARAMS: dict[str, float | int | bool] = {
    "max_iter": 150,
    "learning_rate": 0.2,
    "max_leaf_nodes": 63,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


def build_model() -> Pipeline:
    """An unfitted pipeline with the tuned gradient-boosting regressor."""
    return Pipeline([("regressor", HistGradientBoostingRegressor(**PARAMS))])


def fit_model(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], weights: npt.NDArray[np.float64] | None = None
) -> Pipeline:
    """Fit a fresh pipeline; ``weights`` give labelled production rows more say than base rows."""
    model = build_model()
    # One OpenMP thread: on a busy machine (or beside a server) HistGradientBoosting's spinning threads
    # made a fit 10-20x slower (43 s against 2.4 s, measured on 2 cores). The environment cannot be
    # relied on: the runtime reads OMP_NUM_THREADS once, when scikit-learn is first imported.
    with threadpool_limits(1):
        model.fit(x, y, regressor__sample_weight=weights)
    return model
