"""The feature schema: the eight inputs of the model, their order, units and valid ranges.

One place for what a valid house looks like. Inference validates requests with it, the trainer
fits on it (in this order), and the database columns are named from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Feature:
    """One model input: its name as clients send it, its column in Postgres, and its valid range."""

    name: str
    column: str
    unit: str
    description: str
    minimum: float
    maximum: float
    example: float

    def problem(self, value: object) -> str | None:
        """Return why ``value`` is not valid for this feature, or None when it is."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{self.name} must be a number ({self.unit}), got {type(value).__name__}"
        number = float(value)
        if not math.isfinite(number):
            return f"{self.name} must be a finite number, got {value}"
        if not self.minimum <= number <= self.maximum:
            return (
                f"{self.name} must be between {self.minimum:g} and {self.maximum:g} ({self.unit}), "
                f"got {number:g}"
            )
        return None


# The ranges hold every row of the California housing data set with room to spare, and refuse
# what cannot be a California block group (negative people, latitude 90, a house in Nevada).
FEATURES: tuple[Feature, ...] = (
    Feature("MedInc", "med_inc", "10,000 USD", "median income of the block group", 0.0, 30.0, 8.3252),
    Feature("HouseAge", "house_age", "years", "median house age", 0.0, 100.0, 41.0),
    Feature("AveRooms", "ave_rooms", "rooms per household", "average rooms", 0.1, 200.0, 6.984127),
    Feature("AveBedrms", "ave_bedrms", "bedrooms per household", "average bedrooms", 0.0, 50.0, 1.02381),
    Feature("Population", "population", "people", "block group population", 1.0, 100_000.0, 322.0),
    Feature("AveOccup", "ave_occup", "people per household", "average occupancy", 0.1, 1_500.0, 2.555556),
    Feature("Latitude", "latitude", "degrees north", "block group latitude", 32.0, 42.5, 37.88),
    Feature("Longitude", "longitude", "degrees east", "block group longitude", -125.0, -114.0, -122.23),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_COLUMNS: tuple[str, ...] = tuple(f.column for f in FEATURES)
TARGET = "MedHouseVal"
TARGET_UNIT_USD = 100_000.0  # the target is in units of 100,000 USD
EXAMPLE: dict[str, float] = {f.name: f.example for f in FEATURES}


def row_problems(row: Mapping[str, object]) -> list[str]:
    """Every reason ``row`` is not a valid model input (missing, extra, wrong type, out of range)."""
    problems = [f"{name} is missing" for name in FEATURE_NAMES if name not in row]
    problems += [
        f"{name} is not a feature (expected {', '.join(FEATURE_NAMES)})"
        for name in row
        if name not in FEATURE_NAMES
    ]
    for feature in FEATURES:
        if feature.name in row:
            problem = feature.problem(row[feature.name])
            if problem:
                problems.append(problem)
    return problems


def to_matrix(rows: Iterable[Mapping[str, float]]) -> npt.NDArray[np.float64]:
    """Rows of named features as a float64 matrix in schema order (what the model is fitted on)."""
    return np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=np.float64)


def matrix_problems(matrix: npt.NDArray[np.float64], columns: Sequence[str]) -> list[str]:
    """Reasons a whole matrix (e.g. a data set) breaks the schema; empty when every row is valid."""
    if tuple(columns) != FEATURE_NAMES:
        return [f"columns must be {', '.join(FEATURE_NAMES)} in this order, got {', '.join(columns)}"]
    problems = []
    for index, feature in enumerate(FEATURES):
        values = matrix[:, index]
        bad = ~np.isfinite(values) | (values < feature.minimum) | (values > feature.maximum)
        if bad.any():
            problems.append(
                f"{feature.name}: {int(bad.sum())} rows outside {feature.minimum:g}..{feature.maximum:g}"
            )
    return problems
