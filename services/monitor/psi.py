"""Population stability index: a pure function of bin counts against expected bin shares.

    >>> round(psi([0.5, 0.5], [50, 50]), 6)
    0.0
    >>> round(psi([0.5, 0.5], [90, 10]), 4)
    0.8789

PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares clipped to
``epsilon`` so an empty bin costs a large but finite amount instead of infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EPSILON = 1e-4


def psi(expected: Sequence[float], actual_counts: Sequence[float], *, epsilon: float = EPSILON) -> float:
    """PSI of observed ``actual_counts`` against ``expected`` shares (same bins, same order).

    Raises:
        ValueError: the two have different lengths, or there are no observations.
    """
    if len(expected) != len(actual_counts):
        raise ValueError(f"{len(expected)} expected shares but {len(actual_counts)} bins of counts")
    total = float(sum(actual_counts))
    if total <= 0:
        raise ValueError("no observations: PSI is undefined")
    score = 0.0
    for share, count in zip(expected, actual_counts, strict=True):
        e = max(float(share), epsilon)
        a = max(count / total, epsilon)
        score += (a - e) * math.log(a / e)
    return score
