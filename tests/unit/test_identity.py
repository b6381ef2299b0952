"""The training identity: two digests that tell a twin (same rows, weights, recipe) from a new one."""

from __future__ import annotations

import numpy as np

from services.trainer.identity import data_digest, recipe_digest
from services.trainer.model import build_model


def test_the_data_digest_changes_with_any_row_price_weight_or_order() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 8)), rng.normal(size=50)
    same = data_digest(x.copy(), y.copy(), None)
    assert same == data_digest(x, y, np.ones(50))  # no weights means all 1
    changed_x = x.copy()
    changed_x[3, 2] += 1e-9
    assert len({same, data_digest(changed_x, y, None), data_digest(x, y * 1.25, None)}) == 3
    assert data_digest(x, y, np.r_[np.ones(49), 3.0]) != same
    assert data_digest(x[::-1], y[::-1], None) != same
    assert data_digest(x[:49], y[:49], None) != same


def test_the_recipe_digest_changes_with_a_parameter_only() -> None:
    model = build_model()
    assert recipe_digest(model) == recipe_digest(build_model())
    other = build_model().set_params(regressor__max_iter=151)
    assert recipe_digest(other) != recipe_digest(model)
