"""The feature schema accepts every real row and refuses nonsense, naming the field and the rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.common.dataset import Dataset
from services.common.features import EXAMPLE, FEATURE_NAMES, matrix_problems, row_problems, to_matrix


def test_every_row_of_the_data_set_is_valid(dataset: Dataset) -> None:
    x = np.vstack([dataset.x_train, dataset.x_holdout])
    assert len(x) == 20_640
    assert matrix_problems(x, list(FEATURE_NAMES)) == []


def test_names_and_order_are_scikit_learns() -> None:
    assert FEATURE_NAMES == (
        "MedInc",
        "HouseAge",
        "AveRooms",
        "AveBedrms",
        "Population",
        "AveOccup",
        "Latitude",
        "Longitude",
    )


def test_the_seed_example_is_valid() -> None:
    assert row_problems(EXAMPLE) == []


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("MedInc", math.nan, "finite"),
        ("MedInc", math.inf, "finite"),
        ("Population", -5.0, "between"),
        ("Latitude", 90.0, "between"),
        ("Longitude", -100.0, "between"),
        ("Longitude", 0.0, "between"),
        ("HouseAge", "old", "must be a number"),
        ("AveRooms", True, "must be a number"),
        ("AveOccup", None, "must be a number"),
    ],
)
def test_nonsense_is_refused_with_the_field_named(field: str, value: object, words: str) -> None:
    problems = row_problems({**EXAMPLE, field: value})
    assert len(problems) == 1
    assert field in problems[0] and words in problems[0]


def test_missing_and_extra_fields_are_named() -> None:
    row: dict[str, object] = {k: v for k, v in EXAMPLE.items() if k != "MedInc"}
    row["Bedrooms"] = 3
    problems = row_problems(row)
    assert "MedInc is missing" in problems
    assert any(p.startswith("Bedrooms is not a feature") for p in problems)


def test_to_matrix_keeps_schema_order() -> None:
    shuffled = dict(reversed(list(EXAMPLE.items())))
    assert to_matrix([shuffled]).tolist() == [[EXAMPLE[name] for name in FEATURE_NAMES]]
