"""Figures of a model on a data set, and the sanity probe every candidate must pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from services.common.features import FEATURES
from services.common.registry import METRIC_HOLDOUT_MAE, METRIC_HOLDOUT_R2, METRIC_HOLDOUT_RMSE


class Regressor(Protocol):
    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...


# A figure's run-metric name when it was measured on the reference holdout.
HOLDOUT_METRICS = {"mae": METRIC_HOLDOUT_MAE, "r2": METRIC_HOLDOUT_R2, "rmse": METRIC_HOLDOUT_RMSE}


@dataclass(frozen=True)
class Metrics:
    """Error figures on one data set (prices in 100k USD).

    A figure that is undefined on these rows is None, and ``undefined`` says why (figure name → reason):
    MAE and RMSE need a row with a finite prediction, R² two distinct true prices.
    """

    mae: float | None
    r2: float | None
    rmse: float | None
    rows: int
    undefined: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_holdout_metrics(self) -> dict[str, float]:
        """The defined reference-holdout figures as run metrics, under the names the services agree on."""
        values = {"mae": self.mae, "r2": self.r2, "rmse": self.rmse}
        return {
            metric: value
            for figure, metric in HOLDOUT_METRICS.items()
            if (value := values[figure]) is not None
        }

    def holdout_undefined(self) -> dict[str, str]:
        """Why each undefined reference-holdout figure is missing, under its run-metric name."""
        return {
            metric: self.undefined[figure]
            for figure, metric in HOLDOUT_METRICS.items()
            if figure in self.undefined
        }


def _absent(rows: int, reason: str) -> Metrics:
    return Metrics(None, None, None, rows, {"mae": reason, "r2": reason, "rmse": reason})


def evaluate(model: Regressor, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Metrics:
    """MAE, R² and RMSE of ``model`` on (x, y); a figure undefined on these rows is None with its reason."""
    return scored(model, x, y)[0]


def scored(
    model: Regressor, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[Metrics, npt.NDArray[np.float64] | None]:
    """(figures, per-row absolute errors) of ``model`` on (x, y); the errors are None when any is not
    finite (the figures then say why), so paired comparisons only ever see finite errors."""
    if len(y) == 0:
        return _absent(0, "no rows"), None
    if not np.isfinite(y).all():
        return _absent(len(y), f"{int((~np.isfinite(y)).sum())} of {len(y)} true prices are not finite"), None
    predicted = np.asarray(model.predict(x), dtype=np.float64)
    if not np.isfinite(predicted).all():
        why = f"{int((~np.isfinite(predicted)).sum())} of {len(y)} predictions are not finite"
        return _absent(len(y), why), None
    # R² compares the error with the spread of the true prices: with fewer than two distinct prices
    # there is no spread, and scikit-learn answers NaN (one row) or a made-up 0 or 1 (force_finite).
    distinct = len(np.unique(y))
    r2 = float(r2_score(y, predicted)) if distinct >= 2 else None
    undefined = (
        {}
        if r2 is not None
        else {"r2": f"fewer than two distinct true prices ({len(y)} rows, {distinct} distinct)"}
    )
    metrics = Metrics(
        mae=float(mean_absolute_error(y, predicted)),
        r2=r2,
        rmse=float(root_mean_squared_error(y, predicted)),
        rows=len(y),
        undefined=undefined,
    )
    return metrics, np.abs(predicted - y)


def probe_matrix(x_sample: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Rows a sane model must price: real rows plus the corners of the feature schema's ranges."""
    low = [feature.minimum for feature in FEATURES]
    high = [feature.maximum for feature in FEATURES]
    return np.vstack([x_sample, np.array([low, high], dtype=np.float64)])


def probe_problems(model: Regressor, probe: npt.NDArray[np.float64]) -> list[str]:
    """Why the model's prices on the probe rows are not sane (not finite, negative); empty when they are."""
    try:
        predicted = np.asarray(model.predict(probe), dtype=np.float64)
    except Exception as error:
        return [f"the model failed to predict the probe rows: {error}"]
    problems = []
    if predicted.shape != (len(probe),):
        problems.append(f"the model returned shape {predicted.shape} for {len(probe)} probe rows")
        return problems
    if not np.isfinite(predicted).all():
        problems.append(f"{int((~np.isfinite(predicted)).sum())} of {len(probe)} probe prices are not finite")
    elif (predicted < 0).any():
        problems.append(f"{int((predicted < 0).sum())} of {len(probe)} probe prices are negative")
    return problems
