"""The rule for a run without a champion (``decide.first_model``): its case table, row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.vocabulary import Plan
from services.monitor.decide.first_model import first_model
from services.monitor.launchers import TrainerOutcome

HOUR = timedelta(minutes=60)
FAILED = TrainerOutcome("cali-housing-trainer-abc", True, "exited 3")
SUCCEEDED = TrainerOutcome("cali-housing-trainer-abc", False, "succeeded")


@pytest.mark.parametrize(
    ("since_launch", "trainer", "plan", "says"),
    [
        (None, None, Plan.LAUNCH_TRAINER, "no champion yet: training v1"),
        (None, FAILED, Plan.LAUNCH_TRAINER, "no champion yet: training v1"),  # a trainer from before
        (timedelta(minutes=10), None, Plan.NOTHING, "training v1 (launched 10 min ago)"),
        (timedelta(minutes=10), SUCCEEDED, Plan.NOTHING, "training v1 (launched 10 min ago)"),
        (timedelta(minutes=10), FAILED, Plan.NOTHING, "v1 trainer failed (cali-housing-trainer-abc"),
        (timedelta(minutes=10), FAILED, Plan.NOTHING, "retried in 50 min"),
        (HOUR, FAILED, Plan.LAUNCH_TRAINER, "retrying v1, the last trainer failed"),
        (HOUR, SUCCEEDED, Plan.LAUNCH_TRAINER, "retrying v1, no champion 60 min after the last launch"),
        (HOUR, None, Plan.LAUNCH_TRAINER, "retrying v1"),
    ],
)
def test_the_case_table(
    since_launch: timedelta | None, trainer: TrainerOutcome | None, plan: Plan, says: str
) -> None:
    decision = first_model(since_launch, trainer, HOUR)
    assert decision.plan is plan and says in decision.reason
    assert decision.reason.startswith("no champion yet")


def test_a_zero_interval_retries_on_every_run() -> None:
    assert first_model(timedelta(0), FAILED, timedelta(0)).plan is Plan.LAUNCH_TRAINER
