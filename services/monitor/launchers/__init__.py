"""Starting the trainer: one interface, two kinds (a local child process; a Kubernetes Job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.common.vocabulary import Action


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did: ``action`` goes into drift_reports.action, ``detail`` is for people."""

    action: Action  # trainer_launched, trainer_already_running or launch_failed
    detail: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainerOutcome:
    """How the newest finished trainer ended: ``trainer`` names it (a Job, or a local log file)."""

    trainer: str
    failed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"trainer": self.trainer, "failed": self.failed, "reason": self.reason}


@dataclass(frozen=True)
class StalledTrainer:
    """A trainer that exists but makes no progress: it neither runs nor ends by itself.

    ``state`` is ``suspended`` (``spec.suspend``: the Job controller starts no pod) or ``stuck`` (alive
    past its deadline, or no pod started); ``detail`` says which, since when, and what to do.
    """

    trainer: str
    state: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"trainer": self.trainer, "state": self.state, "detail": self.detail}


class Launcher(Protocol):
    def launch(self, report_id: int) -> LaunchResult:
        """Start the trainer for drift report ``report_id`` unless one is running; never raises."""
        ...

    def last_finished(self) -> TrainerOutcome | None:
        """The newest trainer that finished (None: none yet, or unknown).

        Raises:
            LauncherError: the trainers cannot be looked at (API refused or unreachable).
        """
        ...

    def stalled(self) -> list[StalledTrainer]:
        """Trainers that neither run nor end (suspended, stuck): they do not block a launch.

        Raises:
            LauncherError: the trainers cannot be looked at (API refused or unreachable).
        """
        ...


class LauncherError(RuntimeError):
    """The launcher cannot see its trainers (a refused or unreachable API)."""
