"""The error model: a label-free estimate of a model's MAE on rows whose prices are not known yet.

Direct loss estimation: a second model learns each row's absolute error from its features and the
model's prediction. It is fitted on errors the model made on rows it did not see (out-of-fold
predictions over the training rows), never on the reference holdout: the holdout, and production
traffic replaying it, is where the estimate is judged. The folds are grouped by the row's feature values
(:func:`grouped_folds`): labelled production rows can replay base or holdout rows, and a duplicate on
both sides of a fold would be predicted by a model that trained on its twin, an error too small.
Squared loss estimates the *mean* absolute error per row, which is what an MAE averages; an absolute
loss would estimate its median and come out low (~20% on this data set's holdout subsets).

The trainer fits one per registered version and stores it as an artifact of the version's run, with
its trees compiled by treelite (``services/common/compiled.py``) when they predict the same errors; the
monitor averages its predictions over the window's sample, from the compiled trees when the version
has them (importing scikit-learn to unpickle the regressor costs a run ~1.1 s). Shared here because
both sides read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:  # scikit-learn costs ~1.1 s to import: only a run that estimates pays it
    from sklearn.ensemble import HistGradientBoostingRegressor

    from services.common.compiled import CompiledModel

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]
# Fits a fresh copy of the monitored model on (x, y, sample weights) and returns its predict function.
Fitter = Callable[[Matrix, Vector, Vector | None], Callable[[Matrix], Vector]]

PARAMS: dict[str, float | int] = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "random_state": 0,
}


def error_features(x: Matrix, predictions: Vector) -> Matrix:
    """The error model's input: the features, then the monitored model's prediction."""
    return np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(predictions, dtype=np.float64)])


class ErrorEstimator(Protocol):
    """What the monitor needs of an error model, pickled or compiled."""

    def estimate_mae(self, x: Matrix, predictions: Vector) -> float | None: ...

    def row_errors(self, x: Matrix, predictions: Vector) -> Vector: ...


def _mean_error(row_errors: Vector) -> float | None:
    """The mean of the per-row errors; None for no rows or a non-finite figure."""
    if len(row_errors) == 0:
        return None
    value = float(np.mean(row_errors))
    return value if np.isfinite(value) else None


@dataclass
class ErrorModel:
    """Predicts a row's absolute error (100k USD) from its features and the model's prediction."""

    regressor: HistGradientBoostingRegressor
    folds: int
    training_rows: int
    out_of_fold_mae: float  # the MAE of the out-of-fold predictions it was fitted on

    def row_errors(self, x: Matrix, predictions: Vector) -> Vector:
        with threadpool_limits(1):
            estimated = self.regressor.predict(error_features(x, predictions))
        return np.clip(np.asarray(estimated, dtype=np.float64), 0.0, None)

    def estimate_mae(self, x: Matrix, predictions: Vector) -> float | None:
        """The estimated MAE of ``predictions`` on rows ``x``; None for no rows or a non-finite figure."""
        return _mean_error(self.row_errors(x, predictions)) if len(x) else None


@dataclass(frozen=True)
class CompiledErrorModel:
    """An error model's trees compiled by treelite: the same per-row errors, without scikit-learn."""

    trees: CompiledModel

    def row_errors(self, x: Matrix, predictions: Vector) -> Vector:
        return np.clip(self.trees.predict(error_features(x, predictions)), 0.0, None)

    def estimate_mae(self, x: Matrix, predictions: Vector) -> float | None:
        """As :meth:`ErrorModel.estimate_mae`."""
        return _mean_error(self.row_errors(x, predictions)) if len(x) else None


def grouped_folds(x: Matrix, folds: int, seed: int = 0) -> npt.NDArray[np.intp]:
    """Each row's fold in ``0..folds-1``, rows with identical feature values always in the same fold.

    The distinct rows are shuffled (``seed``) and dealt to the folds in turn, so each fold holds about
    as many distinct rows as the others. Raises ValueError with fewer distinct rows than folds.
    """
    _, group = np.unique(np.asarray(x, dtype=np.float64), axis=0, return_inverse=True)
    group = np.asarray(group, dtype=np.intp).reshape(-1)
    groups = int(group.max()) + 1 if len(group) else 0
    if groups < folds:
        raise ValueError(f"{groups} distinct feature rows cannot fill {folds} folds; set fewer folds")
    fold_of_group = np.empty(groups, dtype=np.intp)
    fold_of_group[np.random.default_rng(seed).permutation(groups)] = np.arange(groups) % folds
    return fold_of_group[group]


def fit_error_model(
    x: Matrix, y: Vector, fit: Fitter, *, weights: Vector | None = None, folds: int = 5, seed: int = 0
) -> ErrorModel:
    """Fit the error model on ``folds``-fold out-of-fold absolute errors of ``fit``'s model over (x, y);
    the folds are :func:`grouped_folds` (a duplicate row is never predicted by a model that saw it)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if folds < 2:
        raise ValueError(f"an error model needs at least 2 folds, not {folds}")
    oof = np.empty(len(y), dtype=np.float64)
    fold = grouped_folds(x, folds, seed)
    for k in range(folds):
        held, train = fold == k, fold != k
        predict = fit(x[train], y[train], None if weights is None else weights[train])
        oof[held] = predict(x[held])
    errors = np.abs(y - oof)
    regressor = HistGradientBoostingRegressor(loss="squared_error", **PARAMS)
    with threadpool_limits(1):
        regressor.fit(error_features(x, oof), errors)
    return ErrorModel(regressor, folds, len(y), float(np.mean(errors)))


def save_error_model(model: ErrorModel, path: Path) -> None:
    """Write ``model`` to ``path`` (joblib: a pickle, read back only from the project's own MLflow store)."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)


def load_error_model(path: Path) -> ErrorModel:
    """An error model written by :func:`save_error_model`; ValueError when the file holds anything else."""
    import joblib

    model = joblib.load(path)
    if not isinstance(model, ErrorModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not an ErrorModel")
    return model
