"""The reference profile: what the training data looked like, for the monitor to compare against.

Written by the trainer as a run artifact (``reference/profile.json``), read by the monitor. It holds,
per feature, the inner quantile bin edges for PSI with the share of training rows in each bin, and a
bounded random sample of training rows for Evidently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from services.common.features import FEATURE_NAMES

PSI_BINS = 10
SAMPLE_ROWS = 5_000


class FeatureBins(BaseModel):
    """Bins of one feature: ``edges`` are the inner edges (bins are open at both ends)."""

    edges: list[float]
    expected: list[float] = Field(description="share of training rows per bin; len(edges) + 1 values")


class ReferenceProfile(BaseModel):
    """The training data's shape: PSI bins per feature and a sample of rows in schema order."""

    features: list[str]
    rows: int
    bins: dict[str, FeatureBins]
    sample: list[list[float]]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))


def bin_shares(values: npt.NDArray[np.float64], edges: list[float]) -> list[float]:
    """Share of ``values`` in each bin; bin i holds edges[i-1] <= v < edges[i] (like SQL width_bucket)."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
    return (counts / max(len(values), 1)).tolist()


def build_profile(x: npt.NDArray[np.float64], *, seed: int = 0) -> ReferenceProfile:
    """Profile the training matrix ``x`` (schema order): decile edges per feature and a sample."""
    bins: dict[str, FeatureBins] = {}
    for index, name in enumerate(FEATURE_NAMES):
        column = x[:, index]
        edges = np.unique(np.quantile(column, np.linspace(0, 1, PSI_BINS + 1)[1:-1])).tolist()
        bins[name] = FeatureBins(edges=edges, expected=bin_shares(column, edges))
    rng = np.random.default_rng(seed)
    take = rng.choice(len(x), size=min(SAMPLE_ROWS, len(x)), replace=False)
    return ReferenceProfile(features=list(FEATURE_NAMES), rows=len(x), bins=bins, sample=x[take].tolist())
