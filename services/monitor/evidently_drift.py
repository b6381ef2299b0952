"""Evidently's DataDriftPreset on a reference sample and a window sample; its scores and HTML report.

Evidently 0.7.23 is pinned and only its ``evidently.presets`` API is used (it ships a legacy one too).
Per column the preset picks a test by sample size and type (K-S p-value, Wasserstein distance, ...);
a p-value drifts below its threshold, a distance at or above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.features import FEATURE_NAMES


@dataclass(frozen=True)
class ColumnTest:
    """One column's drift test; a score Evidently could not compute (NaN, infinite) is None, never drifted."""

    method: str
    score: float | None
    threshold: float
    drifted: bool
    undefined: str | None = None  # why ``score`` is None

    def as_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }
        if self.undefined:
            figures["undefined"] = self.undefined
        return figures


def column_test(method: str, score: float, threshold: float) -> ColumnTest:
    """The test of one column; e.g. a distance normed by a reference spread of zero is not a score."""
    if not math.isfinite(score):
        return ColumnTest(method, None, threshold, False, f"Evidently's {method} came out {score!r}")
    return ColumnTest(method, score, threshold, column_drifted(method, score, threshold))


@dataclass(frozen=True)
class EvidentlyResult:
    drift_share: float
    drifted_columns: int
    tests: dict[str, ColumnTest]
    snapshot: Any  # evidently Snapshot: save_html(path)

    def save_html(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path


def column_drifted(method: str, score: float, threshold: float) -> bool:
    """A p-value test drifts below its threshold; a distance drifts at or above it."""
    return score < threshold if "p_value" in method else score >= threshold


def run_drift_preset(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64], *, drift_share: float
) -> EvidentlyResult:
    """Run the preset on two matrices in schema order; ``drift_share`` is the preset's dataset threshold."""
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = list(FEATURE_NAMES)
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
        reference_data=pd.DataFrame(reference, columns=columns),
        current_data=pd.DataFrame(current, columns=columns),
    )
    share: float | None = None
    count = 0
    tests: dict[str, ColumnTest] = {}
    for metric in snapshot.dict()["metrics"]:
        config, value = metric.get("config", {}), metric.get("value")
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            share, count = float(value["share"]), int(value["count"])
        elif kind.endswith("ValueDrift"):
            method, threshold, score = str(config["method"]), float(config["threshold"]), float(value)
            tests[str(config["column"])] = column_test(method, score, threshold)
    if share is None or not math.isfinite(share):
        # The share of eight columns is always defined: without it the pinned preset's API has changed,
        # and the run must fail loudly rather than store or compare a made-up share.
        raise ValueError(f"Evidently's DataDriftPreset reported no drifted-columns share (got {share!r})")
    return EvidentlyResult(share, count, tests, snapshot)
