"""The first champion without a person: what a run does when the registry has no champion yet.

The monitor launches the trainer itself (the same launcher, admission policy and launch bookkeeping as
a retrain), so a fresh install reaches a serving v1 with nobody running ``housing train``:

| last v1 launch   | last trainer      | plan           | the run says                           |
|------------------|-------------------|----------------|----------------------------------------|
| none             | any               | launch         | no champion yet: training v1           |
| < retry interval | none or succeeded | nothing        | training v1 (launched … ago)           |
| < retry interval | failed            | nothing        | the v1 trainer failed (…); retried in … |
| ≥ retry interval | any               | launch (retry) | retrying v1: …                         |

Retry policy: a failed first trainer is alerted (``trainer_failed``, once per trainer) and retried once
per ``ALERT_COOLDOWN_MINUTES`` (60 by default), not on every run. A first training that fails is almost
always configuration (no data, a wrong URL, a refused Job): relaunching it every 10-minute run would add
a failed Job and an alert six times an hour for the same cause, while one retry an hour still recovers
by itself once the cause is fixed. A trainer that succeeded but left no champion (the gate refused a
candidate below the floor) is retried on the same clock. A trainer still running past the interval is
not doubled: the launcher answers ``trainer_already_running``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.common.vocabulary import Plan
from services.monitor.launchers import TrainerOutcome


@dataclass(frozen=True)
class FirstModel:
    """The plan for a run without a champion, and its line for people."""

    plan: Plan
    reason: str


def _minutes(age: timedelta) -> str:
    return f"{age.total_seconds() / 60:.0f} min"


def first_model(
    since_launch: timedelta | None, trainer: TrainerOutcome | None, retry_after: timedelta
) -> FirstModel:
    """What to do without a champion, given the time since the monitor last launched a trainer for v1
    (None: never), the newest finished trainer and the retry interval."""
    if since_launch is None:
        return FirstModel(Plan.LAUNCH_TRAINER, "no champion yet: training v1")
    if since_launch < retry_after:
        wait = _minutes(retry_after - since_launch)
        if trainer is not None and trainer.failed:
            return FirstModel(
                Plan.NOTHING,
                f"no champion yet: the v1 trainer failed ({trainer.trainer}: {trainer.reason});"
                f" retried in {wait}",
            )
        return FirstModel(
            Plan.NOTHING, f"no champion yet: training v1 (launched {_minutes(since_launch)} ago)"
        )
    if trainer is not None and trainer.failed:
        why = f"the last trainer failed ({trainer.trainer}: {trainer.reason})"
    else:
        why = f"no champion {_minutes(since_launch)} after the last launch"
    return FirstModel(Plan.LAUNCH_TRAINER, f"no champion yet: retrying v1, {why}")
