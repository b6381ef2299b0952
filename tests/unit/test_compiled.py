"""The compiled form of a model: the same prices as the pipeline (derived features included), a round
trip through a file, checkpoints compiled before the derived features still served as they were, and a
clear refusal for what treelite cannot compile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from services.common import compiled, derived_features
from services.common.dataset import Dataset
from services.trainer.model import build_model, fit_model


@pytest.fixture(scope="module")
def pipeline(dataset: Dataset) -> Pipeline:
    return fit_model(dataset.x_train, dataset.y_train)


def test_the_compiled_trees_price_the_holdout_as_the_pipeline_does(
    pipeline: Pipeline, dataset: Dataset, tmp_path: Path
) -> None:
    model = compiled.load(compiled.save(compiled.compile_pipeline(pipeline), tmp_path / "model.tl"))
    expected = pipeline.predict(dataset.x_holdout)
    got = model.predict(dataset.x_holdout)
    assert got.shape == expected.shape == (len(dataset.y_holdout),)
    assert compiled.max_abs_difference(got, expected) <= compiled.PARITY_TOLERANCE
    assert model.predict(dataset.x_holdout[:1]).shape == (1,)  # one row, as a lone request sends
    assert model.derives_features  # the trees read 18 columns; the checkpoint said which


def test_a_row_alone_is_priced_as_in_a_batch_by_the_compiled_trees(
    pipeline: Pipeline, dataset: Dataset, tmp_path: Path
) -> None:
    model = compiled.load(compiled.save(compiled.compile_pipeline(pipeline), tmp_path / "model.tl"))
    batch = model.predict(dataset.x_holdout[:64])
    alone = np.array([model.predict(dataset.x_holdout[i : i + 1])[0] for i in range(64)])
    assert np.array_equal(alone, batch)


def test_a_checkpoint_compiled_before_the_derived_features_loads_and_prices_as_before(
    dataset: Dataset, tmp_path: Path
) -> None:
    """What every version registered before the transform holds: trees of the 8 raw features, written by
    ``treelite.sklearn.import_model(...).serialize`` with no attributes."""
    import treelite.sklearn

    old = fit_model(dataset.x_train, dataset.y_train, model=build_model(derive=False))
    path = tmp_path / "model.tl"
    treelite.sklearn.import_model(old.steps[-1][1]).serialize(str(path))
    model = compiled.load(path)
    assert not model.derives_features
    difference = compiled.max_abs_difference(model.predict(dataset.x_holdout), old.predict(dataset.x_holdout))
    assert difference <= compiled.PARITY_TOLERANCE
    # Compiled today, a lone tree ensemble still states no transform.
    assert not compiled.load(
        compiled.save(compiled.compile_pipeline(old), tmp_path / "new.tl")
    ).derives_features


def test_a_checkpoint_naming_a_transform_this_build_lacks_is_refused(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    import json

    trees = compiled.compile_pipeline(pipeline)
    trees.get_header_accessor().set_field("attributes", json.dumps({"transform": "polar", "degrees": [1.0]}))
    with pytest.raises(derived_features.UnknownTransform, match="'polar'"):
        compiled.load(compiled.save(trees, tmp_path / "model.tl"))


def test_only_a_tree_ensemble_alone_or_after_the_derived_features_is_compiled(
    pipeline: Pipeline, dataset: Dataset
) -> None:
    with pytest.raises(compiled.CannotCompile, match="3 steps"):
        compiled.compile_pipeline(Pipeline([("scale", StandardScaler()), *pipeline.steps]))
    with pytest.raises(compiled.CannotCompile, match="2 steps"):
        compiled.compile_pipeline(Pipeline([("scale", StandardScaler()), pipeline.steps[-1]]))
    mean = Pipeline([("regressor", DummyRegressor())]).fit(dataset.x_train, dataset.y_train)
    with pytest.raises(compiled.CannotCompile, match="DummyRegressor"):
        compiled.compile_pipeline(mean)


def test_differences_are_measured_and_shapes_must_agree() -> None:
    assert compiled.max_abs_difference(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == 0.5
    assert compiled.max_abs_difference(np.array([1.0]), np.array([1.0, 2.0])) == float("inf")
    assert compiled.runtime_label().startswith("treelite ")


def test_rows_of_the_wrong_width_are_refused_not_read_past(pipeline: Pipeline, tmp_path: Path) -> None:
    """The native walk reads the columns it is told the trees have: a narrower row must never reach it."""
    import treelite.sklearn

    wide = compiled.load(compiled.save(compiled.compile_pipeline(pipeline), tmp_path / "model.tl"))
    with pytest.raises(ValueError, match="8 raw features"):
        wide.predict(np.zeros((3, 7)))
    path = tmp_path / "raw.tl"
    treelite.sklearn.import_model(pipeline.steps[-1][1]).serialize(str(path))  # 18 inputs, no transform
    with pytest.raises(ValueError, match="rows of 18 numbers, got shape \\(3, 8\\)"):
        compiled.load(path).predict(np.zeros((3, 8)))
