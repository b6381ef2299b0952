"""The native walk of compiled trees against treelite's own evaluator (GTIL) and scikit-learn: the same
outputs for boosted trees (with the rotated coordinates computed on the way), for a forest's average,
for rows with missing values (each split's default way), and a refusal for trees it does not evaluate."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.pipeline import Pipeline

from services.common import compiled
from services.common.dataset import Dataset
from services.common.derived_features import add_rotated_coordinates
from services.common.tree_walk import FlatTrees, NotWalkable, _records, flatten
from services.trainer.model import fit_model


def _gtil(model: Any, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    import treelite.gtil

    return np.asarray(treelite.gtil.predict(model, x, nthread=1), dtype=np.float64).reshape(-1)


def test_the_served_model_prices_every_row_as_gtil_and_the_pipeline_do(dataset: Dataset) -> None:
    pipeline = fit_model(dataset.x_train, dataset.y_train)
    trees = compiled.compile_pipeline(pipeline)
    model = compiled.CompiledModel(trees, compiled.coefficients_from(trees.attributes))
    x = np.vstack([dataset.x_train, dataset.x_holdout])
    walked = model.predict(x)
    assert compiled.max_abs_difference(walked, _gtil(trees, add_rotated_coordinates(x))) <= 1e-12
    assert compiled.max_abs_difference(walked, pipeline.predict(x)) <= 1e-12


def test_missing_values_take_each_split_s_default_way(dataset: Dataset) -> None:
    """Trained with NaNs, scikit-learn learns a way for them at each split (both ways occur here)."""
    rng = np.random.default_rng(7)
    x = dataset.x_train[:4000].copy()
    x[rng.random(x.shape) < 0.2] = np.nan
    regressor = HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(x, dataset.y_train[:4000])
    trees = compiled.compile_pipeline(Pipeline([("regressor", regressor)]))
    nodes = flatten(trees).nodes
    split = nodes["feature"] >= 0
    assert 0 < nodes["default_left"][split].sum() < split.sum()  # both ways are exercised
    model = compiled.CompiledModel(trees)
    assert compiled.max_abs_difference(model.predict(x), _gtil(trees, x)) <= 1e-12
    assert compiled.max_abs_difference(model.predict(x), regressor.predict(x)) <= 1e-9


def test_a_tree_numbered_in_another_order_is_walked_by_its_links() -> None:
    """treelite numbers scikit-learn's nodes depth-first already; any other numbering is renumbered.

    The tree: node 0 asks x0 <= 0.5 (left: node 2, right: node 1 = leaf 10); node 2 asks x1 <= 0.5
    (left: node 4 = leaf 1, right: node 3 = leaf 2)."""
    leaf, split = 0, 1
    fields = {
        "node_type": np.array([split, leaf, split, leaf, leaf]),
        "split_index": np.array([0, -1, 1, -1, -1]),
        "threshold": np.array([0.5, 0.0, 0.5, 0.0, 0.0]),
        "cleft": np.array([2, -1, 4, -1, -1]),
        "cright": np.array([1, -1, 3, -1, -1]),
        "default_left": np.array([1, 0, 0, 0, 0], dtype=np.uint8),
        "leaf_value": np.array([0.0, 10.0, 0.0, 2.0, 1.0]),
    }
    trees = FlatTrees(_records(fields, 0), np.array([0], dtype=np.int32), 0.5, 1.0, width=2)
    empty = np.empty(0)
    rows = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [np.nan, 1.0], [0.0, np.nan]])
    assert trees.predict(rows, empty, empty).tolist() == [1.5, 2.5, 10.5, 2.5, 2.5]


def test_a_forest_is_averaged(dataset: Dataset) -> None:
    forest = RandomForestRegressor(n_estimators=12, max_depth=8, random_state=0)
    forest.fit(dataset.x_train[:3000], dataset.y_train[:3000])
    trees = compiled.compile_pipeline(Pipeline([("regressor", forest)]))
    assert flatten(trees).divisor == 12.0
    x = dataset.x_holdout.astype(np.float32).astype(np.float64)  # what scikit-learn's forest compares
    got = compiled.CompiledModel(trees).predict(x)
    assert compiled.max_abs_difference(got, _gtil(trees, x)) <= 1e-12
    assert compiled.max_abs_difference(got, forest.predict(x)) <= 1e-9


def test_trees_with_categorical_splits_are_refused_not_walked(dataset: Dataset) -> None:
    x = dataset.x_train[:2000].copy()
    x[:, 1] = np.floor(x[:, 1] / 10.0)  # house age in decades: a category
    regressor = HistGradientBoostingRegressor(max_iter=10, categorical_features=[1], random_state=0)
    regressor.fit(x, dataset.y_train[:2000])
    with pytest.raises(compiled.CannotCompile, match="categorical splits"):
        compiled.compile_pipeline(Pipeline([("regressor", regressor)]))
    import treelite.sklearn

    with pytest.raises(NotWalkable, match="categorical"):
        compiled.CompiledModel(treelite.sklearn.import_model(regressor))
