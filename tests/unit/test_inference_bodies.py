"""Request bodies: parsing, limits, and messages that name the field and the rule."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.features import EXAMPLE, FEATURE_NAMES
from services.inference.bodies import body_limit, parse_feedback, parse_predict
from services.inference.errors import InvalidInput


def test_one_row_becomes_a_matrix_in_schema_order() -> None:
    shuffled = dict(reversed(list(EXAMPLE.items())))
    parsed = parse_predict(shuffled, 10)
    assert not parsed.batch
    assert parsed.matrix.dtype == np.float64
    assert parsed.matrix.tolist() == [[EXAMPLE[name] for name in FEATURE_NAMES]]


def test_a_batch_keeps_its_order() -> None:
    rows = [{**EXAMPLE, "MedInc": float(i)} for i in range(1, 4)]
    parsed = parse_predict({"instances": rows}, 3)
    assert parsed.batch and parsed.matrix[:, 0].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({**EXAMPLE, "MedInc": float("nan")}, "MedInc must be a finite number"),
        ({**EXAMPLE, "MedInc": float("inf")}, "MedInc must be a finite number"),
        ({**EXAMPLE, "Longitude": -200}, "Longitude must be between -125 and -114"),
        ({"instances": []}, "instances: must hold 1 to 2 rows"),
        ({"instances": [EXAMPLE] * 3}, "got 3"),
        ([EXAMPLE], "body: must be an object, got list"),
    ],
)
def test_problems_name_the_field_and_the_rule(payload: object, expected: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_predict(payload, 2)
    assert any(expected in problem for problem in raised.value.problems)


def test_a_garbage_batch_reports_a_bounded_number_of_problems() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_predict({"instances": [{"x": 1}] * 500}, 1000)
    assert len(raised.value.problems) == 20


def test_feedback_is_checked_field_by_field() -> None:
    good = parse_feedback(
        {"prediction_id": "0b0e6a3c-5d7e-4f6a-9c1b-2d3e4f5a6b7c", "actual_price_usd": 452600}
    )
    assert good.actual_price_usd == 452600.0
    with pytest.raises(InvalidInput) as raised:
        parse_feedback({"prediction_id": "nope", "actual_price_usd": True, "extra": 1})
    problems = " ".join(raised.value.problems)
    assert "extra: not a field" in problems and "prediction_id: must be a UUID" in problems
    assert "actual_price_usd: must be a number" in problems


def test_the_body_limit_grows_with_the_batch_limit() -> None:
    assert body_limit(1000) > body_limit(1) > 1000


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({**EXAMPLE, "HouseAge": True}, "HouseAge must be a number (years), got bool"),
        ({**EXAMPLE, "HouseAge": "41"}, "HouseAge must be a number (years), got str"),
        ({**EXAMPLE, "extra": 1.0}, "extra is not a feature"),
        ({k: v for k, v in EXAMPLE.items() if k != "MedInc"} | {"medinc": 8.3}, "MedInc is missing"),
        ({"instances": [EXAMPLE], "extra": 1}, "extra: not allowed beside instances"),
        ({"instances": [EXAMPLE, {**EXAMPLE, "Latitude": 90.0}]}, "instances[1].Latitude must be between"),
    ],
)
def test_the_fast_path_leaves_every_bad_row_to_the_full_check(payload: object, expected: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_predict(payload, 2)
    assert any(expected in problem for problem in raised.value.problems)


def test_integers_and_the_bounds_themselves_are_valid() -> None:
    edge = {**EXAMPLE, "HouseAge": 100, "Longitude": -125.0, "Population": 1}
    assert parse_predict(edge, 1).matrix.tolist() == [[float(edge[name]) for name in FEATURE_NAMES]]
    assert parse_predict({"instances": [edge, EXAMPLE]}, 2).matrix.shape == (2, len(FEATURE_NAMES))
