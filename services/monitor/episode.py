"""The episode a rollback undoes, and the version it restores: pure functions over ``model_events`` rows.

A champion's *reign* runs from the event that made it champion (``promoted``, ``forced`` or
``rolled_back``) to the next such event. A reign is *vouched for* when

- it began with a rollback (the restored model was the good one), or it replaced no champion (the first),
  or no event made it champion (it served before the event log): nothing to judge it against; or
- its own rollback test (``services.monitor.sequential``) ended without a rollback: ``not_worse`` or
  ``inconclusive`` at the horizon, over the labelled rows it served during its reign.

The *episode* is the chain of reigns since the last vouched one: promotions that no live evidence has
yet backed, however many (a twin promoted, then a bad candidate over the twin). A rollback restores the
vouched version before the episode, and the champion's test compares it with that version — the one a
rollback would bring back — not with ``previous``. The chain is read at most ``MAX_DEPTH`` reigns back;
the oldest read ends it as if vouched for (it says so in the figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.common.vocabulary import ModelEvent

MAX_DEPTH = 6  # reigns read back from the champion: an episode longer than 5 promotions is not expected

CHAMPION_EVENTS = (ModelEvent.PROMOTED, ModelEvent.FORCED, ModelEvent.ROLLED_BACK)


@dataclass(frozen=True)
class EventRow:
    """One ``model_events`` row that changed the champion."""

    event: ModelEvent
    version: int
    previous: int | None
    at: datetime


@dataclass(frozen=True)
class Reign:
    """A version's time as champion."""

    version: int
    event: ModelEvent | None  # what made it champion; None: no event did (it served before the log)
    previous: int | None  # the champion it replaced
    start: datetime | None
    end: datetime | None  # when the next champion replaced it; None: it serves now

    @property
    def vouched_without_test(self) -> bool:
        """Restored by a rollback, the first champion, or older than the event log: nothing to test."""
        return self.event is None or self.event is ModelEvent.ROLLED_BACK or self.previous is None


def reigns(events: Sequence[EventRow], champion: int, depth: int = MAX_DEPTH) -> list[Reign]:
    """The champion's reign and those before it, newest first, back to one vouched for without a test
    (or ``depth`` reigns). ``events`` are the champion-changing rows in any order."""
    newest_first = sorted(events, key=lambda row: row.at, reverse=True)
    chain: list[Reign] = []
    version: int | None = champion
    end: datetime | None = None
    while version is not None and len(chain) < depth:
        row = next(
            (r for r in newest_first if r.version == version and (end is None or r.at < end)),
            None,
        )
        reign = (
            Reign(version, None, None, None, end)
            if row is None
            else Reign(version, row.event, row.previous, row.at, end)
        )
        chain.append(reign)
        if reign.vouched_without_test:
            break
        version, end = reign.previous, reign.start
    return chain


def restore_index(chain: Sequence[Reign], vouched: Sequence[bool]) -> int:
    """The index in ``chain`` (newest first) of the reign a rollback restores: the nearest earlier one
    vouched for, else the oldest read (the chain ends there)."""
    if len(chain) < 2 or len(vouched) != len(chain):
        raise ValueError("a restore needs the champion's reign and at least one before it, each judged")
    return next((i for i in range(1, len(chain)) if vouched[i]), len(chain) - 1)
