"""The compiled form of a model: the same prices as the pipeline, a round trip through a file, and a
clear refusal for what treelite cannot compile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from services.common import compiled
from services.common.dataset import Dataset
from services.trainer.model import fit_model


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


def test_only_a_lone_tree_ensemble_is_compiled(pipeline: Pipeline, dataset: Dataset) -> None:
    with pytest.raises(compiled.CannotCompile, match="2 steps"):
        compiled.compile_pipeline(Pipeline([("scale", StandardScaler()), *pipeline.steps]))
    mean = Pipeline([("regressor", DummyRegressor())]).fit(dataset.x_train, dataset.y_train)
    with pytest.raises(compiled.CannotCompile, match="DummyRegressor"):
        compiled.compile_pipeline(mean)


def test_differences_are_measured_and_shapes_must_agree() -> None:
    assert compiled.max_abs_difference(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == 0.5
    assert compiled.max_abs_difference(np.array([1.0]), np.array([1.0, 2.0])) == float("inf")
    assert compiled.runtime_label().startswith("treelite ")
