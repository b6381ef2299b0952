"""What one monitor run found and did (``RunSummary``), and the error that says it could not run.

Every stage of a run writes into the summary as it goes (measure → decide → act → record); the CLI
prints it (``housing monitor --json``) and the report row stores it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.vocabulary import Action, Plan, RunStatus, Trigger
from services.monitor.launchers import StalledTrainer, TrainerOutcome


class MonitorFailed(RuntimeError):
    """The run could not do its job; the message says why (a report row says so too, when possible)."""


@dataclass
class RunSummary:
    """What one run found and did: printed by ``housing monitor --json``."""

    status: RunStatus
    report_id: int | None = None
    model_version: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int = 0
    labelled_rows: int = 0
    psi: dict[str, float] = field(default_factory=dict)
    drift_share: float | None = None
    drift: bool = False
    live_mae: float | None = None
    reference_mae: float | None = None
    estimated_mae: float | None = None  # label-free, from the champion's error model
    estimate_se: float | None = None  # its standard error (SD of the per-row estimated errors / √n)
    realized_to_estimated: float | None = None  # on the window's labelled rows (details.concept)
    trainer: TrainerOutcome | None = None
    trainer_checked: bool = False  # the launcher could look at its trainers this run
    stalled: list[StalledTrainer] = field(default_factory=list)  # suspended or stuck trainers
    triggers: list[Trigger] = field(default_factory=list)
    plan: Plan = Plan.NOTHING  # what the verdict asked; ``action`` says what the run did
    action: Action = Action.NONE
    alerted: bool = False
    report_path: str | None = None
    detail: str = ""
    duration_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "status": self.status,
            "model_version": self.model_version,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "psi": self.psi,
            "drift_share": self.drift_share,
            "drift": self.drift,
            "live_mae": self.live_mae,
            "reference_mae": self.reference_mae,
            "estimated_mae": self.estimated_mae,
            "estimate_se": self.estimate_se,
            "realized_to_estimated": self.realized_to_estimated,
            "trainer": self.trainer.as_dict() if self.trainer else None,
            "triggers": self.triggers,
            "plan": self.plan,
            "labels": self.details.get("labels"),  # new labels counted against RETRAIN_MIN_NEW_LABELS
            # why the kept sums were recounted (a database restored into another server); None: not
            "database_restored": self.details.get("database_restored"),
            "action": self.action,
            "alerted": self.alerted,
            "report_path": self.report_path,
            "detail": self.detail,
            "duration_seconds": round(self.duration_seconds, 3),
        }


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record how long the block took, in seconds, as ``timings[name]`` (the report's ``details.timings``)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)
