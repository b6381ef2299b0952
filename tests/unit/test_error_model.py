"""The error model: fitted on out-of-fold errors, it estimates a model's MAE on rows without labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.linear_model import LinearRegression

from services.common.error_model import fit_error_model, load_error_model, save_error_model

Array = npt.NDArray[np.float64]


def world(
    n: int, rng: np.random.Generator, mix: tuple[float, float] = (1, 1), offset: float = 0.0
) -> tuple[Array, Array]:
    """A linear price whose noise grows with the first feature: where x0 is high, the model errs more.

    ``mix`` is the Beta distribution of x0 in [0, 1] (a covariate shift inside the training range);
    ``offset`` moves x0 beyond it.
    """
    x = rng.uniform(0, 1, size=(n, 3))
    x[:, 0] = rng.beta(*mix, size=n) + offset
    y = 2 * x[:, 0] + x[:, 1] + rng.normal(0, 0.05 + 0.5 * x[:, 0], size=n)
    return x, y


def linear(x: Array, y: Array, weights: Array | None) -> Callable[[Array], Array]:
    model = LinearRegression().fit(x, y, sample_weight=weights)
    return lambda rows: np.asarray(model.predict(rows), dtype=np.float64)


@pytest.mark.parametrize(
    "mix", [(1, 1), (3, 1), (1, 3)], ids=["steady", "towards noisy rows", "towards calm rows"]
)
def test_the_estimate_follows_the_realized_mae_under_covariate_shift(mix: tuple[float, float]) -> None:
    rng = np.random.default_rng(3)
    x, y = world(6000, rng)
    error_model = fit_error_model(x, y, linear, folds=5)
    predict = linear(x, y, None)
    new_x, new_y = world(3000, rng, mix)
    predictions = predict(new_x)
    realized = float(np.mean(np.abs(new_y - predictions)))
    estimated = error_model.estimate_mae(new_x, predictions)
    assert estimated is not None and estimated == pytest.approx(realized, rel=0.10)


def test_beyond_the_training_range_the_estimate_falls_short() -> None:
    """Trees do not extrapolate: rows past anything trained on get the errors of the edge rows."""
    rng = np.random.default_rng(3)
    x, y = world(6000, rng)
    error_model = fit_error_model(x, y, linear, folds=5)
    new_x, new_y = world(3000, rng, offset=0.5)
    predictions = linear(x, y, None)(new_x)
    estimated = error_model.estimate_mae(new_x, predictions)
    assert estimated is not None and estimated < 0.9 * float(np.mean(np.abs(new_y - predictions)))


def test_it_keeps_what_it_was_fitted_on_and_survives_a_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x, y = world(1000, rng)
    error_model = fit_error_model(x, y, linear, weights=np.ones(len(y)), folds=3)
    assert (error_model.folds, error_model.training_rows) == (3, 1000)
    assert error_model.out_of_fold_mae > 0
    path = tmp_path / "error_model.joblib"
    save_error_model(error_model, path)
    again = load_error_model(path)
    predictions = linear(x, y, None)(x[:50])
    assert again.estimate_mae(x[:50], predictions) == error_model.estimate_mae(x[:50], predictions)
    assert error_model.estimate_mae(x[:0], predictions[:0]) is None
    assert (error_model.row_errors(x[:50], predictions) >= 0).all()


def test_it_needs_two_folds_and_reads_only_error_models(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x, y = world(100, rng)
    with pytest.raises(ValueError, match="at least 2 folds"):
        fit_error_model(x, y, linear, folds=1)
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="not an ErrorModel"):
        load_error_model(tmp_path / "other.joblib")


def test_its_compiled_trees_estimate_what_the_regressor_does(tmp_path: Path) -> None:
    """The monitor's form (treelite, no scikit-learn): per-row errors within the gate's parity tolerance."""
    from services.common import compiled
    from services.common.error_model import CompiledErrorModel

    rng = np.random.default_rng(6)
    x, y = world(3000, rng)
    error_model = fit_error_model(x, y, linear, folds=3)
    trees = CompiledErrorModel(
        compiled.load(compiled.save(compiled.compile_pipeline(error_model.regressor), tmp_path / "model.tl"))
    )
    new_x, _ = world(2000, rng, (3, 1))
    predictions = linear(x, y, None)(new_x)
    difference = compiled.max_abs_difference(
        trees.row_errors(new_x, predictions), error_model.row_errors(new_x, predictions)
    )
    assert difference <= compiled.PARITY_TOLERANCE
    assert trees.estimate_mae(new_x, predictions) == pytest.approx(
        error_model.estimate_mae(new_x, predictions), abs=compiled.PARITY_TOLERANCE
    )
    assert trees.estimate_mae(new_x[:0], predictions[:0]) is None


def test_grouped_folds_never_split_duplicate_rows() -> None:
    """Production rows replay base and holdout rows: every copy of a row lands in one fold."""
    from services.common.error_model import grouped_folds

    rng = np.random.default_rng(7)
    distinct, _ = world(400, rng)
    x = distinct[rng.integers(0, len(distinct), size=3000)]  # ~7 copies of each row, in any order
    fold = grouped_folds(x, 5, seed=1)
    _, group = np.unique(x, axis=0, return_inverse=True)
    folds_per_group = {g: set(fold[group.reshape(-1) == g]) for g in np.unique(group)}
    assert all(len(found) == 1 for found in folds_per_group.values())
    assert sorted(np.unique(fold)) == [0, 1, 2, 3, 4]
    assert np.bincount(fold).min() > 0.12 * len(x)  # dealt evenly by distinct row
    assert not np.array_equal(fold, grouped_folds(x, 5, seed=2))  # the seed shuffles
    with pytest.raises(ValueError, match="fewer folds"):
        grouped_folds(x[:3], 5)


def test_the_error_model_never_predicts_a_row_whose_twin_it_trained_on() -> None:
    """Honest out-of-fold errors with duplicates: no held row has a copy in its fold's training rows."""
    rng = np.random.default_rng(8)
    distinct, prices = world(600, rng)
    pick = rng.integers(0, len(distinct), size=2400)
    x, y = distinct[pick], prices[pick]
    straddled: list[int] = []

    def recording(train_x: Array, train_y: Array, weights: Array | None) -> Callable[[Array], Array]:
        seen = {row.tobytes() for row in train_x}
        predict = linear(train_x, train_y, weights)

        def checked(rows: Array) -> Array:
            straddled.append(sum(row.tobytes() in seen for row in rows))
            return predict(rows)

        return checked

    fit_error_model(x, y, recording, folds=5)
    assert straddled == [0] * 5
