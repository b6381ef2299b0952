"""A suspended trainer Job, as the monitor meets it run after run: alerted once, never blocking.

Real Postgres (the alert episodes, the report rows), a real MLflow store with a champion, the real
monitor run; the Kubernetes API is the local stand-in of tests/unit/test_monitor_kubernetes.py (a
Job that stays suspended for ten runs is not something a real cluster makes cheaper to hold, and
the classification itself is tabled there). ~23 s after the shared champion fixture.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from services.common.dataset import Dataset
from services.common.progress import Stages
from services.common.vocabulary import Action, AlertKind
from services.monitor.alerts import WebhookChannel
from services.monitor.launchers.kubernetes import KubernetesLauncher
from services.monitor.run import MonitorParts, run_monitor
from tests.conftest import Registry
from tests.unit.test_monitor_kubernetes import TEMPLATE, FakeApiServer, _batch

from .test_monitor_run import Receiver, _db_now, _log, _settings, _shifted


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.server.shutdown()


def test_a_suspended_trainer_is_alerted_once_in_ten_runs_and_does_not_stop_retraining(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, api: FakeApiServer
) -> None:
    webhook = Receiver()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.jobs = [
        {
            "metadata": {
                "name": "housing-trainer-held",
                "namespace": "housing",
                "creationTimestamp": created,
            },
            "spec": {**copy.deepcopy(TEMPLATE["spec"]), "suspend": True},
            "status": {},
        }
    ]
    settings = _settings(database_url, tmp_path, alert_cooldown_minutes=0)
    parts = MonitorParts(
        settings,
        database_url,
        champion_registry.client,
        champion_registry.experiment_id,
        lambda: KubernetesLauncher(_batch(api.url), "housing", TEMPLATE),
        [WebhookChannel(webhook.url, 0.5)],
        Stages(7, quiet=True),
    )
    try:
        first = run_monitor(parts)
        assert first.alerted
        assert [body["kind"] for _, body in webhook.posts] == [AlertKind.TRAINER_STALLED]
        text = webhook.posts[0][1]["text"]
        assert (
            "housing-trainer-held is suspended" in text and "kubectl patch job housing-trainer-held" in text
        )
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT details->'stalled_trainers' FROM drift_reports WHERE id = %s", (first.report_id,)
            ).fetchone()
        assert row is not None and row[0][0]["trainer"] == "housing-trainer-held"
        assert row[0][0]["state"] == "suspended"

        # The 2nd to the 10th run with the same Job still suspended: no second alert.
        for _ in range(9):
            assert not run_monitor(parts).alerted
        assert len(webhook.posts) == 1

        # Drift: the suspended Job does not count as a running trainer, so retraining goes on.
        _log(database_url, _shifted(dataset), _db_now(database_url))
        drifted = run_monitor(parts)
        assert drifted.action == Action.TRAINER_LAUNCHED, drifted.detail
        assert drifted.details["launch"]["stalled_jobs"] == ["housing-trainer-held"]
        assert AlertKind.TRAINER_STALLED not in drifted.details.get("alert_kinds", [])

        # The Job deleted: the episode ends; suspended again later, it is a new alert.
        held = api.jobs.pop()
        assert not run_monitor(parts).alerted
        api.jobs.append(held)
        again = run_monitor(parts)
        assert again.alerted and webhook.posts[-1][1]["kind"] == AlertKind.TRAINER_STALLED
    finally:
        webhook.server.shutdown()
