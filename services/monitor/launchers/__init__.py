"""Starting the trainer: one interface, two kinds (a local child process; a Kubernetes Job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

LaunchAction = Literal["trainer_launched", "trainer_already_running", "launch_failed"]


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did: ``action`` goes into drift_reports.action, ``detail`` is for people."""

    action: LaunchAction
    detail: str
    info: dict[str, Any] = field(default_factory=dict)


class Launcher(Protocol):
    def launch(self, report_id: int) -> LaunchResult:
        """Start the trainer for drift report ``report_id`` unless one is running; never raises."""
        ...
