"""V2 inference requests: one tensor ``features`` [n, 8], flat or nested, checked with /predict's rules."""

from __future__ import annotations

import pytest

from services.common.features import EXAMPLE, FEATURE_NAMES
from services.inference.errors import InvalidInput
from services.inference.tensors import OUTPUTS, parse_infer

VALUES = [EXAMPLE[name] for name in FEATURE_NAMES]


def request(**changes: object) -> dict[str, object]:
    tensor = {"name": "features", "datatype": "FP64", "shape": [1, 8], "data": VALUES, **changes}
    return {"inputs": [tensor]}


def test_flat_and_nested_data_give_the_same_rows() -> None:
    rows = [VALUES, [3.0, *VALUES[1:]]]
    flat = parse_infer(request(shape=[2, 8], data=[v for row in rows for v in row]), 10)
    nested = parse_infer(request(shape=[2, 8], data=rows), 10)
    assert flat.matrix.tolist() == nested.matrix.tolist() == rows
    assert flat.outputs == OUTPUTS and flat.request_id is None


def test_id_and_outputs_are_kept() -> None:
    parsed = parse_infer({**request(datatype="FP32"), "id": "7", "outputs": [{"name": "prediction_id"}]}, 1)
    assert parsed.request_id == "7" and parsed.outputs == ("prediction_id",)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], "the body must be a V2 inference request"),
        ({}, "inputs: is missing"),
        ({"inputs": []}, "inputs: must hold one tensor features"),
        ({"inputs": [3]}, "inputs[0]: must be a tensor object"),
        (request(name="x"), "inputs[0].name: must be features"),
        (request(datatype="BYTES"), "inputs[0].datatype: must be FP64"),
        (request(shape=[1, 9]), "inputs[0].shape: must be [n, 8]"),
        (request(shape=[True, 8]), "inputs[0].shape: must be [n, 8]"),
        (request(shape=[0, 8]), "must hold 1 to 4 rows (PREDICT_MAX_BATCH)"),
        (request(shape=[5, 8]), "must hold 1 to 4 rows (PREDICT_MAX_BATCH)"),
        (request(data=VALUES[:7]), "must hold the shape's 8 numbers"),
        (request(data=[VALUES[:7]]), "nested rows must hold 8 numbers"),
        (request(data={"a": 1}), "inputs[0].data: must be a list"),
        (request(data=[float("nan"), *VALUES[1:]]), "inputs[0].data[0].MedInc must be a finite number"),
        (request(data=[None, *VALUES[1:]]), "inputs[0].data[0].MedInc must be a number"),
        (request(data=[*VALUES[:6], 90.0, VALUES[7]]), "inputs[0].data[0].Latitude must be between"),
        (request(parameters={"binary_data_size": 64}), "binary tensor extension"),
        ({**request(), "id": 3}, "id: must be a string"),
        ({**request(), "outputs": [{"name": "y"}]}, "outputs[0].name: must be MedHouseVal or prediction_id"),
    ],
)
def test_each_problem_names_the_field_and_the_rule(payload: object, expected: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_infer(payload, 4)
    assert expected in raised.value.detail
    assert raised.value.problems
