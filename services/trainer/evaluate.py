"""Figures of a model on a data set, and the sanity probe every candidate must pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from services.common.features import FEATURES
from services.common.registry import METRIC_HOLDOUT_MAE, METRIC_HOLDOUT_R2, METRIC_HOLDOUT_RMSE


class Regressor(Protocol):
    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...


@dataclass(frozen=True)
class Metrics:
    """Error figures on one data set (prices in 100k USD)."""

    mae: float
    r2: float
    rmse: float
    rows: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def as_holdout_metrics(self) -> dict[str, float]:
        """The run metrics of a model's reference-holdout figures, under the names the services agree on."""
        return {METRIC_HOLDOUT_MAE: self.mae, METRIC_HOLDOUT_R2: self.r2, METRIC_HOLDOUT_RMSE: self.rmse}


def evaluate(model: Regressor, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Metrics | None:
    """MAE, R² and RMSE of ``model`` on (x, y); None for an empty set or predictions that are not finite."""
    if len(y) == 0:
        return None
    predicted = np.asarray(model.predict(x), dtype=np.float64)
    if not np.isfinite(predicted).all():
        return None
    r2 = float(r2_score(y, predicted)) if len(y) > 1 else float("nan")
    return Metrics(
        mae=float(mean_absolute_error(y, predicted)),
        r2=r2,
        rmse=float(root_mean_squared_error(y, predicted)),
        rows=len(y),
    )


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
