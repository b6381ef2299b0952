"""Which monitor runs log their report to MLflow: those that find something, else one per period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.vocabulary import Action, RunStatus
from services.monitor.report import mlflow_due

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "action", "last", "due"),
    [
        (RunStatus.DRIFT, Action.TRAINER_LAUNCHED, NOW - timedelta(minutes=5), True),
        (RunStatus.DEGRADED, Action.NONE, NOW - timedelta(minutes=5), True),
        (RunStatus.DEGRADED, Action.ROLLED_BACK, NOW, True),
        (RunStatus.OK, Action.ROLLBACK_FAILED, NOW, True),
        (RunStatus.OK, Action.NONE, None, True),  # nothing logged yet: the first one is
        (RunStatus.OK, Action.NONE, NOW - timedelta(hours=23, minutes=59), False),
        (RunStatus.OK, Action.NONE, NOW - timedelta(hours=24), True),
        (RunStatus.INSUFFICIENT_DATA, Action.NONE, NOW - timedelta(hours=1), False),
    ],
)
def test_a_report_goes_to_mlflow_when_it_found_something_or_is_due(
    status: RunStatus, action: Action, last: datetime | None, due: bool
) -> None:
    assert mlflow_due(status, action, last, NOW, every_hours=24) is due
