"""Two models' absolute errors on the same rows, compared by a one-sided paired percentile bootstrap.

The per-row difference is ``|candidate error| - |champion error|`` (100k USD): negative where the candidate
is closer to the true price. Its mean is the difference of the two MAEs on those rows. The bootstrap
resamples rows (2,000 resamples, a fixed seed, so a decision is reproducible from its rows) and reads the
5th and 95th percentiles of the resampled means: each is a one-sided 95 % bound.

Two tests, each against a margin stated as a share of the champion's MAE on the same rows:

- superiority ("better by the margin"): passes when the upper bound is below ``-margin``;
- non-inferiority ("not worse beyond the margin"): passes when the upper bound is at most ``+margin``.

The minimum detectable effect (MDE) is ``(z₀.₉₅ + z₀.₈₀) · sd / √n``: the smallest true departure from
the margin that these rows detect with 80 % power at the one-sided 5 % level (normal approximation).
A candidate that is truly better by ``margin + mde`` passes superiority four times in five.

Example::

    evidence = compare("recent", SUPERIORITY, candidate_errors, champion_errors, relative_margin=0.02)
    evidence.passed, evidence.as_dict()
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 16  # any fixed seed: the same rows always give the same bounds
Z_CONFIDENCE = 1.6449  # one-sided 5 %
Z_POWER = 0.8416  # 80 % power
CHUNK = 250  # resamples drawn at once: 250 x 4,128 holdout rows of indices is 8 MB

Test = Literal["superiority", "non-inferiority"]
SUPERIORITY: Test = "superiority"
NON_INFERIORITY: Test = "non-inferiority"


@dataclass(frozen=True)
class Evidence:
    """One paired comparison, as every decision records it (``model_events.figures["evidence"]``).

    Figures are in 100k USD; ``difference``, ``lower`` and ``upper`` are candidate - champion MAE
    (negative: the candidate is better); ``lower`` and ``upper`` are one-sided 95 % bounds.
    """

    comparison: str  # which rows: "recent" (labelled production rows) or "holdout" (the reference)
    test: Test
    rows: int
    candidate_mae: float
    champion_mae: float
    difference: float
    lower: float
    upper: float
    margin: float  # absolute: relative_margin x champion_mae
    relative_margin: float
    mde: float
    passed: bool
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One sentence for the reasons: the rows, the difference, its bound, the margin and the MDE."""
        claim = "better by more than" if self.test == SUPERIORITY else "not worse by more than"
        claim += f" {self.margin:.4f} ({self.relative_margin:.1%} of the champion's MAE)"
        verdict = "shown" if self.passed else "not shown"
        return (
            f"{self.comparison}, {self.rows} rows: candidate - champion MAE {self.difference:+.4f} "
            f"({self.candidate_mae:.4f} vs {self.champion_mae:.4f}; {self.confidence:.0%} bounds "
            f"[{self.lower:+.4f}, {self.upper:+.4f}]); {claim}: {verdict} "
            f"(detectable with 80% power: {self.mde:.4f} beyond the margin)"
        )


def bootstrap_means(
    differences: npt.NDArray[np.float64], resamples: int = RESAMPLES, seed: int = SEED
) -> npt.NDArray[np.float64]:
    """The means of ``resamples`` resamples (rows drawn with replacement) of ``differences``."""
    rng = np.random.default_rng(seed)
    n = len(differences)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        means[start : start + size] = differences[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return means


def compare(
    comparison: str,
    test: Test,
    candidate_errors: npt.NDArray[np.float64],
    champion_errors: npt.NDArray[np.float64],
    relative_margin: float,
) -> Evidence:
    """The evidence of one paired comparison of absolute errors (same rows, same order).

    Raises:
        ValueError: when the arrays differ in length, are empty, or hold a non-finite error.
    """
    candidate = np.abs(np.asarray(candidate_errors, dtype=np.float64))
    champion = np.abs(np.asarray(champion_errors, dtype=np.float64))
    if candidate.shape != champion.shape or candidate.ndim != 1 or len(candidate) == 0:
        raise ValueError(
            f"paired errors need two non-empty rows of one length, got {candidate.shape} and {champion.shape}"
        )
    if not (np.isfinite(candidate).all() and np.isfinite(champion).all()):
        raise ValueError("paired errors must be finite: measure the figures before comparing them")
    differences = candidate - champion
    n = len(differences)
    means = bootstrap_means(differences)
    lower, upper = np.quantile(means, [1 - CONFIDENCE, CONFIDENCE])
    spread = float(differences.std(ddof=1 if n > 1 else 0))
    champion_mae = float(champion.mean())
    margin = relative_margin * champion_mae
    passed = bool(upper < -margin) if test == SUPERIORITY else bool(upper <= margin)
    return Evidence(
        comparison=comparison,
        test=test,
        rows=n,
        candidate_mae=float(candidate.mean()),
        champion_mae=champion_mae,
        difference=float(differences.mean()),
        lower=float(lower),
        upper=float(upper),
        margin=margin,
        relative_margin=relative_margin,
        mde=float((Z_CONFIDENCE + Z_POWER) * spread / np.sqrt(n)),
        passed=passed,
    )
