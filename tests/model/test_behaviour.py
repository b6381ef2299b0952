"""Behavioural checks of the served model: directions and invariances a buyer would expect."""

from __future__ import annotations

import mlflow.sklearn
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from services.common.features import EXAMPLE, FEATURE_NAMES, to_matrix
from services.common.registry import MODEL_NAME
from tests.conftest import Registry

pytestmark = pytest.mark.timeout(300)  # includes training the session champion


@pytest.fixture
def model(champion_registry: Registry):  # type: ignore[no-untyped-def]
    client = champion_registry.client
    return mlflow.sklearn.load_model(client.get_model_version_download_uri(MODEL_NAME, "1"))


def _predict(model, rows: list[dict[str, float]]) -> np.ndarray:  # type: ignore[no-untyped-def]
    with threadpool_limits(1):
        return np.asarray(model.predict(to_matrix(rows)))


def test_more_income_never_lowers_the_price_much(model) -> None:  # type: ignore[no-untyped-def]
    incomes = np.linspace(0.5, 15, 30)
    prices = _predict(model, [{**EXAMPLE, "MedInc": float(x)} for x in incomes])
    assert np.all(np.diff(prices) > -0.15)  # 15,000 USD of wiggle between neighbouring steps
    assert prices[-1] - prices[0] > 1.0  # and overall, richer areas cost much more


def test_coastal_beats_inland_at_the_same_figures(model) -> None:  # type: ignore[no-untyped-def]
    coast, inland = _predict(
        model,
        [
            {**EXAMPLE, "Latitude": 37.8, "Longitude": -122.4},
            {**EXAMPLE, "Latitude": 36.7, "Longitude": -119.8},
        ],
    )
    assert coast > inland


def test_one_row_alone_or_in_a_batch_scores_the_same(model) -> None:  # type: ignore[no-untyped-def]
    rows = [{**EXAMPLE, "HouseAge": float(age)} for age in range(1, 51)]
    batch = _predict(model, rows)
    alone = np.array([_predict(model, [row])[0] for row in rows[:5]])
    assert alone == pytest.approx(batch[:5])
    assert list(FEATURE_NAMES) == list(EXAMPLE)
