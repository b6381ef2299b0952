"""The derived features: the rotated coordinates by their formula, the same for a row alone or in any
batch, the raw columns untouched, and a clear refusal of rows that are not the eight raw features."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytest

from services.common import derived_features as derived
from services.common.dataset import Dataset
from services.common.derived_step import RotatedCoordinates
from services.common.features import FEATURE_NAMES


def test_the_rotations_follow_their_formula_after_the_untouched_raw_columns(dataset: Dataset) -> None:
    x = dataset.x_holdout
    wide = derived.add_rotated_coordinates(x)
    assert wide.shape == (len(x), 8 + 2 * len(derived.ROTATION_DEGREES))
    assert np.array_equal(wide[:, :8], x)
    lat, lon = x[:, [FEATURE_NAMES.index("Latitude")]], x[:, [FEATURE_NAMES.index("Longitude")]]
    theta = np.deg2rad(derived.ROTATION_DEGREES)
    expected = np.hstack(
        [lon * np.cos(theta) - lat * np.sin(theta), lon * np.sin(theta) + lat * np.cos(theta)]
    )
    assert np.array_equal(wide[:, 8:], expected)  # bit for bit, not approximately
    assert len(derived.derived_names()) == wide.shape[1]


def test_a_row_gets_the_same_columns_alone_or_in_a_batch_of_any_size(dataset: Dataset) -> None:
    x = dataset.x_holdout[:300]
    whole = derived.add_rotated_coordinates(x)
    for size in (1, 7, 16, 64):
        parts = [derived.add_rotated_coordinates(x[i : i + size]) for i in range(0, len(x), size)]
        assert np.array_equal(np.vstack(parts), whole), size


def test_rows_that_are_not_the_eight_raw_features_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r"8 raw features in schema order .*MedInc.*shape \(2, 18\)"):
        derived.add_rotated_coordinates(np.zeros((2, 18)))
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        derived.add_rotated_coordinates(np.zeros(8))


def test_the_step_carries_its_angles_through_a_pickle_and_states_them_for_the_compiled_trees(
    dataset: Dataset,
) -> None:
    step = RotatedCoordinates((10.0, 20.0))
    restored = cloudpickle.loads(cloudpickle.dumps(step.fit(dataset.x_train)))
    x = dataset.x_holdout[:50]
    assert np.array_equal(restored.transform(x), derived.add_rotated_coordinates(x, (10.0, 20.0)))
    attributes = derived.step_attributes(restored)
    assert attributes == {"transform": derived.ROTATED_COORDINATES, "degrees": [10.0, 20.0]}
    rotation = derived.coefficients_from(attributes)
    assert rotation is not None and np.array_equal(derived.rotate(x, *rotation), restored.transform(x))


def test_checkpoint_attributes_without_a_transform_mean_none_and_an_unknown_one_is_refused() -> None:
    assert derived.coefficients_from({}) is None  # every checkpoint compiled before the transform
    assert derived.step_attributes(object()) is None
    with pytest.raises(derived.UnknownTransform, match=r"'polar'.*release that trained it"):
        derived.coefficients_from({"transform": "polar", "degrees": [1.0]})


def test_the_pipeline_reads_the_same_in_every_process_so_its_recipe_digest_does() -> None:
    """A function's repr holds its address: a FunctionTransformer made the digest differ run to run."""
    import subprocess
    import sys

    code = (
        "from services.trainer.model import build_model\n"
        "from services.trainer.identity import recipe_digest\n"
        "print(recipe_digest(build_model()))"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(digests) == 1, digests
