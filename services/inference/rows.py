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
# Postgres's type of each column (migrations 0004 on): the writer COPYs in binary, which sends each
# value as that type's bytes and needs the types named. Text COPY formatted each row in ~5.3 µs of the
# writer's CPU (float repr), binary in ~1.0 µs (500-row batches of these rows against the embedded
# Postgres); that CPU holds the GIL the event loop needs.
COLUMN_TYPES: tuple[str, ...] = (
    "uuid",
    "timestamptz",
    "integer",
    "text",
    "uuid",
    *("double precision" for _ in FEATURE_COLUMNS),
    "double precision",
    "real",
)
CHAMPION_ROLE = Role.CHAMPION
CHALLENGER_ROLE = Role.CHALLENGER
