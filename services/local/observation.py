"""What the demo and the closed-loop test read from the shared tables: the queries live here, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.database import connect
from services.common.vocabulary import ModelEvent, Role


@dataclass(frozen=True)
class Decision:
    """The gate's decision on a version: ``event`` is promoted or rejected; ``at`` in epoch seconds."""

    event: ModelEvent
    version: int
    reasons: list[str]
    at: float
    figures: dict[str, Any] = field(default_factory=dict)  # model_events.figures (the gate's evidence)


@dataclass(frozen=True)
class ErrorSample:
    """One labelled champion prediction: when (epoch seconds), by which version, how far off (100k USD)."""

    at: float
    version: int
    error: float


@dataclass(frozen=True)
class Observation:
    """Read-only queries on ``predictions``, ``feedback`` and ``model_events`` of one database."""

    database_url: str

    def logged_predictions(self) -> int:
        """Champion predictions written so far (the server's writer works in the background)."""
        with connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM predictions WHERE role = %s", (Role.CHAMPION,)
            ).fetchone()
        return int(row[0]) if row else 0

    def events(self) -> list[tuple[ModelEvent, int]]:
        """Every lifecycle event, oldest first, as (event, model version)."""
        with connect(self.database_url) as conn:
            rows = conn.execute("SELECT event, model_version FROM model_events ORDER BY id").fetchall()
        return [(ModelEvent(event), int(version)) for event, version in rows]

    def decision_after(self, version: int) -> Decision | None:
        """The gate's first decision on a version newer than ``version``; None while there is none."""
        with connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT event, model_version, reasons, extract(epoch FROM created_at), figures"
                " FROM model_events WHERE event IN (%s, %s) AND model_version > %s ORDER BY id LIMIT 1",
                (ModelEvent.PROMOTED, ModelEvent.REJECTED, version),
            ).fetchone()
        if row is None:
            return None
        figures = row[4] if isinstance(row[4], dict) else {}
        return Decision(ModelEvent(row[0]), int(row[1]), list(row[2]), float(row[3]), figures)

    def registered_at(self, version: int) -> float | None:
        """When ``version`` was registered (epoch seconds)."""
        with connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM created_at) FROM model_events"
                " WHERE event = %s AND model_version = %s ORDER BY id LIMIT 1",
                (ModelEvent.REGISTERED, version),
            ).fetchone()
        return float(row[0]) if row else None

    def live_mae(self, version: int, since: datetime | None) -> float | None:
        """``version``'s MAE as champion on its labelled predictions since ``since`` (None: no rows)."""
        with connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT avg(abs(p.prediction - f.actual)), count(*) FROM predictions p"
                " JOIN feedback f ON f.prediction_id = p.id"
                " WHERE p.role = %s AND p.model_version = %s"
                " AND (%s::timestamptz IS NULL OR p.created_at >= %s)",
                (Role.CHAMPION, version, since, since),
            ).fetchone()
        return float(row[0]) if row and row[1] else None

    def errors(self) -> list[ErrorSample]:
        """Every labelled champion prediction's absolute error, oldest first."""
        with connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM p.created_at), p.model_version, abs(p.prediction - f.actual)"
                " FROM predictions p JOIN feedback f ON f.prediction_id = p.id"
                " WHERE p.role = %s ORDER BY p.created_at",
                (Role.CHAMPION,),
            ).fetchall()
        return [ErrorSample(float(at), int(version), float(error)) for at, version, error in rows]
