"""Traffic scenarios: which real rows a simulated client sends, and what their true prices turn out to be.

Pure functions of the held-out rows and a random generator, so a scenario is reproducible from its seed:

- ``steady``: rows drawn uniformly from the holdout; true prices as recorded.
- ``covariate-shift``: mostly high-income districts (``MedInc`` in the top quantiles of the holdout),
  so the feature mix moves while the price of each house stays true.
- ``concept-shift``: the steady mix, but every house sells for 25% more than the data set says.

A price factor can be set on any scenario (``covariate-shift`` with ``price_factor=1.25`` is both shifts).

Example::

    spec = scenario_spec("covariate-shift")
    rows = sample_indices(x_holdout, spec, 500, np.random.default_rng(0))
    prices = true_prices_usd(y_holdout[rows], spec)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from services.common.features import FEATURE_NAMES, TARGET_UNIT_USD

ScenarioName = Literal["steady", "covariate-shift", "concept-shift"]
SCENARIOS: tuple[str, ...] = get_args(ScenarioName)

MED_INC = FEATURE_NAMES.index("MedInc")
# "Mostly high-income": 90% of rows from districts above the holdout's 70th MedInc percentile. On the
# reference deciles that is a PSI on MedInc of about 2, far beyond the 0.2 threshold.
HIGH_INCOME_QUANTILE = 0.7
HIGH_INCOME_SHARE = 0.9
CONCEPT_PRICE_FACTOR = 1.25


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario's mix of rows and its price factor.

    Attributes:
        name: the scenario's name.
        high_income_share: share of rows drawn from high-income districts; None keeps the holdout's mix.
        price_factor: true price = recorded price x this factor.
    """

    name: str
    high_income_share: float | None
    price_factor: float

    def describe(self) -> str:
        mix = (
            "the holdout's mix"
            if self.high_income_share is None
            else f"{self.high_income_share:.0%} high-income districts (MedInc above its "
            f"{HIGH_INCOME_QUANTILE:.0%} percentile)"
        )
        change = self.price_factor - 1.0
        prices = "true prices" if abs(change) < 1e-9 else f"prices {change:+.0%}"
        return f"{mix}, {prices}"


def scenario_spec(name: str, price_factor: float | None = None) -> ScenarioSpec:
    """The spec of a named scenario, with its price factor optionally overridden.

    Raises:
        ValueError: for an unknown name or a non-positive price factor.
    """
    specs = {
        "steady": ScenarioSpec("steady", None, 1.0),
        "covariate-shift": ScenarioSpec("covariate-shift", HIGH_INCOME_SHARE, 1.0),
        "concept-shift": ScenarioSpec("concept-shift", None, CONCEPT_PRICE_FACTOR),
    }
    if name not in specs:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    spec = specs[name]
    if price_factor is not None:
        if not price_factor > 0:
            raise ValueError(f"the price factor must be positive, got {price_factor}")
        spec = replace(spec, price_factor=price_factor)
    return spec


def high_income_mask(
    x: npt.NDArray[np.float64], quantile: float = HIGH_INCOME_QUANTILE
) -> npt.NDArray[np.bool_]:
    """Rows whose MedInc is above the ``quantile`` of the rows given."""
    incomes = x[:, MED_INC]
    return np.asarray(incomes > np.quantile(incomes, quantile), dtype=bool)


def _draw(pool: npt.NDArray[np.intp], n: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    """``n`` rows of ``pool``: each row once before any row repeats (passes over reshuffled copies)."""
    if n <= 0 or len(pool) == 0:
        return np.empty(0, dtype=np.intp)
    passes = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:n]


def sample_indices(
    x: npt.NDArray[np.float64], spec: ScenarioSpec, n: int, rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """Indices of ``n`` rows of ``x`` (the holdout) that a client in this scenario sends, in sending order."""
    every = np.arange(len(x), dtype=np.intp)
    if spec.high_income_share is None:
        return _draw(every, n, rng)
    high = high_income_mask(x)
    n_high = round(n * spec.high_income_share)
    picked = np.concatenate([_draw(every[high], n_high, rng), _draw(every[~high], n - n_high, rng)])
    return np.asarray(rng.permutation(picked), dtype=np.intp)


def true_prices_usd(y: npt.NDArray[np.float64], spec: ScenarioSpec) -> npt.NDArray[np.float64]:
    """The prices the houses actually sell for, in USD (the target is in 100,000 USD)."""
    return np.asarray(y * TARGET_UNIT_USD * spec.price_factor, dtype=np.float64)


def scenario_traffic(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    spec: ScenarioSpec,
    n: int,
    rng: np.random.Generator,
) -> tuple[list[dict[str, float]], list[float]]:
    """``n`` request bodies (``{"MedInc": ..., ...}``) and the true price in USD of each, in sending order."""
    take = sample_indices(x, spec, n, rng)
    rows = [
        {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}
        for row in x[take].tolist()
    ]
    return rows, true_prices_usd(y[take], spec).tolist()
