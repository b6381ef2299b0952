"""The demo's timeline: what happened when, in seconds since the demo started."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal[
    "setup", "model", "traffic", "monitor", "drift", "alert", "retrain", "promotion", "swap", "rollback"
]


@dataclass(frozen=True)
class Event:
    """One step of the demo: ``at`` seconds after the start; ``mark`` labels it on the live-error plot."""

    at: float
    kind: Kind
    title: str
    detail: str = ""
    mark: str | None = None


@dataclass
class Timeline:
    """Events in the order they happened, timed by a monotonic clock from ``started`` (epoch seconds)."""

    started: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    _origin: float = field(default_factory=time.monotonic, repr=False)

    def now(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self._origin

    def add(
        self, kind: Kind, title: str, detail: str = "", *, at: float | None = None, mark: str | None = None
    ) -> Event:
        event = Event(self.now() if at is None else at, kind, title, detail, mark)
        self.events.append(event)
        self.events.sort(key=lambda e: e.at)
        return event

    def since_start(self, epoch_seconds: float) -> float:
        """An absolute time (e.g. a row's ``created_at``) as seconds since the start."""
        return epoch_seconds - self.started


def clock(seconds: float) -> str:
    """``m:ss.s`` for a number of seconds."""
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"
