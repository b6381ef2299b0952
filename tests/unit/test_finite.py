"""The storage guard: a NaN or infinity never reaches storage or a printed summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from services.common.finite import (
    NON_FINITE,
    dumps_summary,
    finite_document,
    non_finite_paths,
)

DOCUMENT = {
    "version": 3,
    "passed": True,
    "recent": {"mae": 0.2, "r2": math.nan, "rows": 1},
    "psi": [0.1, np.float32("inf"), -math.inf],
    "reason": "nan",
}


def test_non_finite_paths_name_every_one() -> None:
    assert non_finite_paths(DOCUMENT) == {"recent.r2": "nan", "psi[1]": "inf", "psi[2]": "-inf"}
    assert non_finite_paths({"a": [1, 2.5, None, "inf", True], "b": np.float64(0.5)}) == {}


def test_a_finite_document_is_stored_as_it_is() -> None:
    assert finite_document({"mae": 0.2, "r2": None}, where="x") == {"mae": 0.2, "r2": None}


def test_a_non_finite_figure_is_null_with_the_reason_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    stored = finite_document(DOCUMENT, where="model_events.figures")
    assert "model_events.figures: recent.r2=nan, psi[1]=inf" in caplog.text
    assert stored["recent"] == {"mae": 0.2, "r2": None, "rows": 1}
    assert stored["psi"] == [0.1, None, None]
    assert stored["reason"] == "nan" and stored["version"] == 3
    assert set(stored[NON_FINITE]) == {"recent.r2", "psi[1]", "psi[2]"}
    assert "not a finite number" in stored[NON_FINITE]["recent.r2"]
    printed = json.loads(dumps_summary(DOCUMENT))  # valid JSON: null, never NaN
    assert printed["recent"]["r2"] is None
