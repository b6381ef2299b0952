"""One logged prediction as the writer COPYs it: a tuple in the ``predictions`` table's column order."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.common.features import FEATURE_COLUMNS
from services.common.vocabulary import Role

# id, created_at, model_version, role, shadow_of, the 8 features, prediction (100k USD), latency_ms
PredictionRow = tuple[
    UUID,
    datetime,
    int,
    str,
    UUID | None,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
]

COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "model_version",
    "role",
    "shadow_of",
    *FEATURE_COLUMNS,
    "prediction",
    "latency_ms",
)
CHAMPION_ROLE = Role.CHAMPION
CHALLENGER_ROLE = Role.CHALLENGER
