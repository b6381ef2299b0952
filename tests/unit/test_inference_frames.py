"""MLflow scoring requests: the four formats give the same rows, checked with /predict's rules."""

from __future__ import annotations

import pytest

from services.common.features import EXAMPLE, FEATURE_NAMES
from services.inference.errors import InvalidInput
from services.inference.frames import parse_invocations

ROWS = [EXAMPLE, {**EXAMPLE, "MedInc": 3.0}]
VALUES = [[row[name] for name in FEATURE_NAMES] for row in ROWS]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": VALUES, "index": [0, 1]}},
        {
            "dataframe_split": {
                "columns": list(reversed(FEATURE_NAMES)),
                "data": [list(reversed(row)) for row in VALUES],
            }
        },
        {"dataframe_records": ROWS},
        {"instances": ROWS},
        {"instances": VALUES},
        {"inputs": VALUES},
        {"inputs": {name: [row[name] for row in ROWS] for name in FEATURE_NAMES}},
    ],
    ids=[
        "split",
        "split, columns shuffled",
        "records",
        "instances",
        "instances as lists",
        "inputs",
        "columns",
    ],
)
def test_every_format_gives_the_rows_in_schema_order(payload: object) -> None:
    assert parse_invocations(payload, 2).tolist() == VALUES


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([ROWS], "the body must be a JSON object"),
        ({}, "exactly one of"),
        ({"instances": ROWS, "params": {}}, "params: not allowed"),
        ({"instances": ROWS * 2}, "must hold 1 to 2 rows (PREDICT_MAX_BATCH), got 4"),
        ({"instances": "x"}, "instances: must be a list of rows"),
        ({"dataframe_records": [VALUES[0]]}, "dataframe_records[0]: must be an object"),
        ({"dataframe_split": {"columns": ["MedInc"]}}, "dataframe_split.data: must be a list of rows"),
        ({"dataframe_split": {"columns": [1], "data": []}}, "dataframe_split.columns: must be a list"),
        ({"dataframe_split": {"columns": [], "data": [], "x": 1}}, "dataframe_split.x: not allowed"),
        ({"inputs": {"MedInc": 1.0}}, "as columns, each value must be a list"),
        ({"instances": [{**EXAMPLE, "MedInc": True}]}, "instances[0].MedInc must be a number"),
        (
            {"dataframe_records": [{**EXAMPLE, "Latitude": 90}]},
            "dataframe_records[0].Latitude must be between",
        ),
    ],
)
def test_each_problem_names_the_field_and_the_rule(payload: object, expected: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_invocations(payload, 2)
    assert expected in raised.value.detail
    assert raised.value.problems
