"""Is a fresh champion worse live than the model it replaced? A sequential test that may look every run.

The test: mSPRT (Johari, Pekelis and Walsh, "Always valid inference", 2017) on the per-row paired
differences ``d = |champion error| - |target error|`` of the labelled rows since the promotion, taken in the
order their labels arrived. The mixture over the mean difference is normal, centred on 0, with standard
deviation ``tau = min_effect x`` the target's MAE so far; the variance of ``d`` is the plug-in sample
variance of the rows so far. The statistic after ``k`` rows (mean ``m``, variance ``v``)::

    Lambda_k = sqrt(v / (v + k tau^2)) * exp(k^2 tau^2 m^2 / (2 v (v + k tau^2)))

and its confidence sequence::

    m +- sqrt(v (v + k tau^2) / (k^2 tau^2) * (2 ln(1/alpha) + ln(1 + k tau^2 / v)))

holds the true mean difference at every ``k`` at once with probability >= 1 - alpha. Looking after every
row, every run, for ever, costs no error rate: that is what lets the CronJob check each run.

The decision, over the first ``horizon`` rows (prefixes from ``min_rows`` on, the earliest that speaks):

- ``worse``: the running lower bound rises above 0 (always-valid p-value <= alpha): roll back;
- ``not_worse``: the running upper bound falls below ``min_effect x`` the target's MAE: the champion is not
  worse by the minimum effect; the test is over and the champion stays;
- ``inconclusive``: ``horizon`` rows and neither: the test is over and the champion stays (a champion is
  not judged for ever);
- ``open`` (fewer than ``horizon`` rows, no decision yet) and ``waiting`` (fewer than ``min_rows``).

No state persists between runs: each run re-reads the labelled rows since the promotion in label order
(the oldest ``horizon`` of them) and recomputes the statistic at every prefix. That is the same test a
monitor watching every label would run, so the decision of an earlier run is reproduced, not stored, and
a run that failed or was skipped loses nothing.

Defaults (``ROLLBACK_ALPHA`` 0.01, ``ROLLBACK_MIN_EFFECT`` 0.10, ``ROLLBACK_HORIZON_LABELS`` 5,000,
``ROLLBACK_MIN_ROWS`` 200) and the error rates ``tests/model/test_rollback_sequential.py`` measures (numpy,
seeded; differences drawn with the spread and tails measured on the standard split: two fits of the
champion differ per row by SD 0.19 (kurtosis 6.5) at MAE 0.293; a fit 10 % worse differs by SD 0.17):

- A/A, 1,000 simulated weeks of 672 runs with 50-500 labels per run, one promotion a week: false
  rollbacks in 0.2 % of weeks (<= 1 % asserted; alpha bounds it at 1 % for any number of looks; 14 of
  5,000 further weeks on other seeds, 0.28 %). With k promotions a week the weekly rate is about k times;
- a champion 10 % worse whose differences spread like a close fit's (SD 0.10): rolled back within 500
  labels in 98 % of 400 trials; spreading like another fit's (SD 0.17): within 500 in 56 %, within 1,000
  in 95 %, within 1,200 in 98 %. At SD 0.17 no test at alpha 0.01 reaches 95 % within 500 labels: a
  single z-test at exactly 500 rows reaches 93 %;
- a champion 15 % worse is rolled back in >= 99 % of 200 trials; one 5 % worse (inside the minimum
  effect) in about half, the rest are judged not worse by 10 %.

Reproduce: ``.venv/bin/python -m pytest tests/model/test_rollback_sequential.py -q -s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.vocabulary import RollbackState

Errors = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SequentialLimits:
    """The test's settings (from MonitorSettings, read once by the CLI)."""

    alpha: float = 0.01
    min_effect: float = 0.10  # relative to the target's MAE
    horizon: int = 5000  # labelled rows
    min_rows: int = 200

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and self.min_effect > 0 and 1 <= self.min_rows <= self.horizon):
            raise ValueError(
                "rollback test settings need 0 < ROLLBACK_ALPHA < 1, ROLLBACK_MIN_EFFECT > 0 and "
                f"1 <= ROLLBACK_MIN_ROWS <= ROLLBACK_HORIZON_LABELS (got {self})"
            )


@dataclass(frozen=True)
class SequentialTest:
    """The test's outcome and the figures behind it (finite numbers, or None before min_rows)."""

    state: RollbackState
    rows: int  # labelled rows the test used (at most the horizon)
    decided_at: int | None  # the rows at which it reached worse / not_worse / inconclusive
    effect: float | None  # mean paired difference at decided_at (or at rows): > 0 the champion is worse
    lower: float | None  # the running always-valid 1 - alpha interval of the mean difference
    upper: float | None
    p_value: float | None  # always-valid p-value for "the champion is worse"
    target_mae: float | None
    margin: float | None  # min_effect x the target's MAE: the smallest difference the test stops for

    def relative(self, figure: float | None) -> float | None:
        """A difference as a fraction of the target's MAE."""
        if figure is None or not self.target_mae:
            return None
        return figure / self.target_mae

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "rows": self.rows,
            "decided_at": self.decided_at,
            "effect": self.effect,
            "lower": self.lower,
            "upper": self.upper,
            "p_value": self.p_value,
            "target_mae": self.target_mae,
            "margin": self.margin,
        }


def msprt(champion: Errors, target: Errors, limits: SequentialLimits) -> SequentialTest:
    """The test on two models' absolute errors over the same rows, in the order their labels arrived.

    Rows beyond ``limits.horizon`` are ignored; a row where either error is not finite is dropped.
    """
    champion, target = np.asarray(champion, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if champion.shape != target.shape or champion.ndim != 1:
        raise ValueError(
            f"paired errors need two 1-d arrays of one length, got {champion.shape} and {target.shape}"
        )
    keep = np.isfinite(champion) & np.isfinite(target)
    champion, target = champion[keep][: limits.horizon], target[keep][: limits.horizon]
    n = len(champion)
    if n < limits.min_rows:
        return SequentialTest(RollbackState.WAITING, n, None, None, None, None, None, None, None)
    curve = _curve(champion - target, target, limits)
    first = limits.min_rows - 1  # prefixes shorter than min_rows never speak
    lower = np.maximum.accumulate(curve.lower[first:])
    upper = np.minimum.accumulate(curve.upper[first:])
    worse = np.flatnonzero(lower > 0)
    safe = np.flatnonzero(upper < curve.margin[first:])
    ends = [
        (int(found[0]), state)
        for found, state in ((worse, RollbackState.WORSE), (safe, RollbackState.NOT_WORSE))
        if len(found)
    ]
    if ends:
        at, state = min(ends)
    else:
        at = n - first - 1
        state = RollbackState.INCONCLUSIVE if n >= limits.horizon else RollbackState.OPEN
    index = first + at
    evidence = np.where(curve.mean[first : index + 1] > 0, curve.log_lambda[first : index + 1], 0.0)
    return SequentialTest(
        state=state,
        rows=n,
        decided_at=index + 1 if state is not RollbackState.OPEN else None,
        effect=float(curve.mean[index]),
        lower=float(lower[at]),
        upper=float(upper[at]),
        p_value=float(min(1.0, math.exp(-float(np.max(evidence))))),
        target_mae=float(curve.target_mae[index]),
        margin=float(curve.margin[first + at]),
    )


@dataclass(frozen=True)
class _Curve:
    mean: Errors
    lower: Errors
    upper: Errors
    log_lambda: Errors
    target_mae: Errors
    margin: Errors


def _curve(d: Errors, target: Errors, limits: SequentialLimits) -> _Curve:
    """The statistic and the confidence sequence at every prefix of ``d`` (vectorized)."""
    k = np.arange(1, len(d) + 1, dtype=np.float64)
    mean = np.cumsum(d) / k
    squares = np.cumsum(d * d)
    variance = np.maximum((squares - k * mean * mean) / np.maximum(k - 1, 1), 1e-12)
    target_mae = np.cumsum(target) / k
    margin = limits.min_effect * target_mae
    tau2 = np.maximum(margin, 1e-6) ** 2
    spread = variance + k * tau2
    log_lambda = 0.5 * np.log(variance / spread) + (k * k * tau2 * mean * mean) / (2 * variance * spread)
    width = np.sqrt(
        variance * spread / (k * k * tau2) * (2 * math.log(1 / limits.alpha) + np.log(spread / variance))
    )
    return _Curve(mean, mean - width, mean + width, log_lambda, target_mae, margin)


def describe(test: SequentialTest, champion: int, target: int, limits: SequentialLimits) -> str:
    """One line for the verdict's reasons: n, the p-value, the effect and its interval."""
    if test.state is RollbackState.WAITING:
        return (
            f"v{champion} against v{target}: {test.rows} of {limits.min_rows} labelled rows before the "
            "rollback test speaks"
        )
    assert test.effect is not None and test.lower is not None and test.upper is not None
    rel = test.relative
    figures = (
        f"n={test.decided_at or test.rows}, always-valid p={test.p_value:.3g} (alpha {limits.alpha:g}), "
        f"mean |error| difference {test.effect:+.4f} ({_percent(rel(test.effect))}), "
        f"{1 - limits.alpha:.0%} interval [{test.lower:+.4f}, {test.upper:+.4f}] "
        f"([{_percent(rel(test.lower))}, {_percent(rel(test.upper))}]) "
        f"of v{target}'s MAE {test.target_mae:.3f}"
    )
    verdict = {
        RollbackState.WORSE: f"v{champion} is worse than v{target}: roll back",
        RollbackState.NOT_WORSE: (
            f"v{champion} is not worse than v{target} by {limits.min_effect:.0%}: test over, it stays"
        ),
        RollbackState.INCONCLUSIVE: (
            f"no decision within {limits.horizon} labels: inconclusive, test over, v{champion} stays"
        ),
        RollbackState.OPEN: (
            f"no decision yet on v{champion} against v{target} (horizon {limits.horizon} labels)"
        ),
    }[test.state]
    return f"{verdict} ({figures})"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"
