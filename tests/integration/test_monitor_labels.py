"""Launch only with something new to learn, over many monitor runs (real Postgres, MLflow store, the
local launcher, a real HTTP alert receiver).

A market that moved and stays moved, its prices not known yet: the 2nd and the 10th run launch nothing,
one alert for the episode, the champion unchanged; when RETRAIN_MIN_NEW_LABELS prices arrive, one
launch. After a refused candidate, the next launch waits for that many labels beyond its rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.events import record_event
from services.common.registry import MODEL_NAME, TAG_LABELLED_SINCE, TAG_LABELLED_UNTIL, current_aliases
from services.common.vocabulary import Action, AlertKind, ModelEvent, Plan, Role, RunStatus
from services.monitor.alerts import WebhookChannel
from services.monitor.launchers.local import read_lock
from services.monitor.run import RunSummary, run_monitor
from tests.conftest import Registry
from tests.integration.test_monitor_run import (
    Receiver,
    _db_now,
    _parts,
    _served,
    _settings,
    _shifted,
    _stop_trainer,
)

NEEDED = 667  # the default: ceil(GATE_MIN_RECENT_ROWS 200 / TRAIN_RECENT_HOLDOUT_FRACTION 0.3)
ROUND = 500  # DRIFT_MIN_ROWS in these settings: one judged window per round


def _round(url: str, x: np.ndarray, served: np.ndarray) -> list[uuid.UUID]:
    """Log a round of shifted predictions (the prices v1 served), true prices unknown; their ids.

    Returns once every row is in the past, as the monitor would find them."""
    start = _db_now(url)
    with psycopg.connect(url) as conn:
        ids = insert_predictions(conn, x, start=start, spacing=timedelta(microseconds=50), predictions=served)
    time.sleep(max(0.0, (start + timedelta(microseconds=50) * len(x) - _db_now(url)).total_seconds()) + 0.05)
    return ids


def _label(url: str, ids: list[uuid.UUID], prices: np.ndarray) -> None:
    """The prices arrive for ``ids`` (feedback carries its prediction's time)."""
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO feedback (prediction_id, predicted_at, actual)"
            " SELECT id, created_at, %s FROM predictions WHERE id = %s",
            [(float(price), prediction_id) for prediction_id, price in zip(ids, prices, strict=True)],
        )


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def _drift_alerts(webhook: Receiver) -> int:
    """Alerts naming drift (one alert may name several kinds: "drift, live_error")."""
    return sum(AlertKind.DRIFT in str(body["kind"]).split(", ") for _, body in webhook.posts)


def _launches(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM drift_reports WHERE action = %s", (Action.TRAINER_LAUNCHED,))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_a_lasting_shift_without_labels_waits_then_launches_once_when_the_prices_arrive(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, webhook: Receiver
) -> None:
    settings = _settings(database_url, tmp_path, retrain_min_new_labels=NEEDED)
    parts = _parts(settings, champion_registry, [WebhookChannel(webhook.url, 0.5)])
    shifted, prices = _shifted(dataset), dataset.y_holdout * 1.25
    served = _served(champion_registry, shifted)
    rounds: list[list[uuid.UUID]] = []
    runs: list[RunSummary] = []
    try:
        for index in range(10):
            part = slice(index * ROUND % 4000, index * ROUND % 4000 + ROUND)
            rounds.append(_round(database_url, shifted[part], served[part]))
            runs.append(run_monitor(parts))
        for number in (1, 2, 10):
            run = runs[number - 1]
            assert (run.status, run.plan, run.action) == (RunStatus.DRIFT, Plan.WAIT_FOR_LABELS, Action.NONE)
            assert "waiting for labels: 0 of 667" in run.detail, run.detail
            assert run.as_dict()["labels"]["new"] == 0 and run.as_dict()["plan"] == Plan.WAIT_FOR_LABELS
        assert [run.alerted for run in runs] == [True] + [False] * 9  # one alert for the episode
        assert len(webhook.posts) == 1 and _drift_alerts(webhook) == 1
        assert "waiting for labels: 0 of 667" in webhook.posts[0][1]["text"]
        assert read_lock(tmp_path) is None and _launches(database_url) == 0  # no trainer was started
        assert current_aliases(champion_registry.client)[Role.CHAMPION] == 1
        with psycopg.connect(database_url) as conn:
            stored = conn.execute(
                "SELECT details->>'plan', details->'labels'->>'new', details->'labels'->>'needed'"
                " FROM drift_reports WHERE id = %s",
                (runs[-1].report_id,),
            ).fetchone()
        assert stored == (Plan.WAIT_FOR_LABELS, "0", "667")

        # Some prices arrive: still short of what the gate needs.
        first_two = rounds[0] + rounds[1]
        _label(database_url, first_two[:600], prices[:600])
        short = run_monitor(parts)
        assert (short.plan, short.action) == (Plan.WAIT_FOR_LABELS, Action.NONE)
        assert "waiting for labels: 600 of 667" in short.detail
        # The labels may start a live-error episode (v1 errs on the moved market): never a second drift alert.
        assert _drift_alerts(webhook) == 1

        # The rest of the first two rounds' prices: one launch.
        _label(database_url, first_two[600:], prices[600 : 2 * ROUND])
        launched = run_monitor(parts)
        assert (launched.plan, launched.action) == (Plan.LAUNCH_TRAINER, Action.TRAINER_LAUNCHED), launched
        assert launched.as_dict()["labels"]["new"] == NEEDED  # counted up to what a launch needs
        after = run_monitor(parts)  # the window restarted at the launch: nothing new to judge
        assert after.action in (Action.NONE, Action.TRAINER_ALREADY_RUNNING)
        assert _launches(database_url) == 1
        assert _drift_alerts(webhook) == 1
    finally:
        _stop_trainer(tmp_path)


def _newest_prediction(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(created_at) FROM predictions").fetchone()
        assert row is not None and row[0] is not None
        return row[0]


def _refused_candidate(registry: Registry, url: str, labelled_until: datetime) -> int:
    """A candidate the gate rejected, whose run says it trained on labelled rows up to ``labelled_until``."""
    client = registry.client
    v1 = client.get_model_version(MODEL_NAME, "1")
    run = client.create_run(
        registry.experiment_id,
        tags={
            TAG_LABELLED_UNTIL: labelled_until.isoformat(),
            TAG_LABELLED_SINCE: (labelled_until - timedelta(hours=720)).isoformat(),
        },
    )
    client.set_terminated(run.info.run_id)
    version = int(client.create_model_version(MODEL_NAME, str(v1.source), run.info.run_id).version)
    with psycopg.connect(url) as conn:
        record_event(conn, ModelEvent.REJECTED, version, actor="test", reasons=["not better"])
    return version


def test_after_a_refused_candidate_the_next_launch_waits_for_labels_beyond_its_rows(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    settings = _settings(database_url, tmp_path, retrain_min_new_labels=NEEDED)
    parts = _parts(settings, champion_registry, [])
    shifted, prices = _shifted(dataset), dataset.y_holdout * 1.25
    try:
        served = _served(champion_registry, shifted[: 1000 + NEEDED])
        seen = _round(database_url, shifted[:1000], served[:1000])
        _label(database_url, seen, prices[:1000])  # 1,000 labels: enough, before the refusal
        # It trained on every labelled row: up to the newest one logged (the round's rows are spaced
        # 50 µs apart from "now", so the newest may still lie ahead of the clock when the round is fast).
        refused = _refused_candidate(champion_registry, database_url, _newest_prediction(database_url))
        waiting = run_monitor(parts)
        assert (waiting.plan, waiting.action) == (Plan.WAIT_FOR_LABELS, Action.NONE), waiting.detail
        labels = waiting.details["labels"]
        assert labels["new"] == 0 and labels["refused"]["version"] == refused
        # v1 trained on no labelled row: every labelled row is new to it, whatever its window.
        assert labels["champion"] == {"version": 1, "labelled_until": None, "window_hours": None}
        # The refused candidate's window, from its run: its start less train.labelled_since.
        assert labels["refused"]["window_hours"] == pytest.approx(720, abs=0.1)

        fresh = _round(database_url, shifted[1000 : 1000 + NEEDED], served[1000:])
        _label(database_url, fresh, prices[1000 : 1000 + NEEDED])
        launched = run_monitor(parts)
        assert launched.action == Action.TRAINER_LAUNCHED, launched.detail
    finally:
        _stop_trainer(tmp_path)
