"""The closed loop end to end, smaller than the demo: real parts on temporary ground.

An embedded Postgres (the session's, a fresh database), an MLflow store in a temporary HOUSING_HOME, a real
``housing serve`` subprocess, real ``housing monitor`` runs launching a real ``housing train``. Shifted
traffic must lead to drift, one alert, a retrained v2 that the gate promotes and the server swaps in
without a failed request; a bad champion forced in must be rolled back by the monitor.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from services.common.connections import mlflow_store, open_registry
from services.common.dataset import Dataset
from services.common.vocabulary import Action, ModelEvent, Role, RunStatus
from services.local.alert_receiver import AlertReceiver
from services.local.bad_model import register_bad_model
from services.local.demo import FOREIGN_SETTINGS, Knobs, free_port
from services.local.processes import Children, housing_command, wait_for
from services.local.scenarios import scenario_spec, scenario_traffic
from services.local.simulator import SimulationSummary, Simulator
from tests.conftest import world_readable_tempdir

pytestmark = pytest.mark.timeout(420)

TOKEN = "closed-loop-test-token"


class Loop:
    """The running system and the means to drive it."""

    def __init__(
        self,
        home: Path,
        database_url: str,
        dataset: Dataset,
        children: Children,
        receiver: AlertReceiver,
        url: str,
    ) -> None:
        self.home = home
        self.receiver = receiver
        self.database_url = database_url
        self.dataset = dataset
        self.children = children
        self.url = url
        self.env: dict[str, str] = {}
        self.sent = 0
        self.phase = 0

    def served_version(self) -> int | None:
        try:
            response = httpx.get(f"{self.url}/model", timeout=2)
        except httpx.HTTPError:
            return None
        return int(response.json()["version"]) if response.is_success else None

    def traffic(self, scenario: str, rows: int, price_factor: float | None = None) -> SimulationSummary:
        self.phase += 1
        bodies, prices = self.rows(scenario, rows, self.phase, price_factor)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            summary = Simulator(client, token=TOKEN).run(bodies, prices, rate=0, feedback_delay=0)
        assert (summary.failed, summary.feedback_failed) == (0, 0), summary.errors
        self.sent += summary.sent
        wait_for(self._all_logged, timeout=30, what="predictions in Postgres")
        return summary

    def _all_logged(self) -> bool | None:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM predictions").fetchone()
        return True if row and row[0] >= self.sent else None

    def monitor(self) -> dict[str, Any]:
        finished = self.children.run(
            "monitor", housing_command("monitor", "--json"), env=self.env, timeout=180
        )
        assert finished.returncode == 0, finished.log.read_text()[-3000:]
        report: dict[str, Any] = json.loads(finished.stdout)
        return report

    def events(self) -> list[tuple[str, int]]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT event, model_version FROM model_events ORDER BY id").fetchall()
        return [(str(event), int(version)) for event, version in rows]

    def rows(
        self, scenario: str, n: int, seed: int, price_factor: float | None = None
    ) -> tuple[list[dict[str, float]], list[float]]:
        spec = scenario_spec(scenario, price_factor)
        rng = np.random.default_rng([11, seed])
        return scenario_traffic(self.dataset.x_holdout, self.dataset.y_holdout, spec, n, rng)


@pytest.fixture
def loop(database_url: str, dataset: Dataset) -> Iterator[Loop]:
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    home = world_readable_tempdir("housing-loop-")
    client, experiment_id = open_registry(*mlflow_store(home))
    summary = run_training(client, experiment_id, database_url, dataset, TrainerSettings(housing_home=home))
    assert summary.version == 1 and summary.gate is not None and summary.gate.decision.passed

    with Children(home / "logs") as children, AlertReceiver() as receiver:
        url = f"http://127.0.0.1:{free_port()}"
        system = Loop(home, database_url, dataset, children, receiver, url)
        system.env = {
            **{k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS},
            **Knobs().env(),
            "HOUSING_HOME": str(home),
            "DATABASE_URL": database_url,
            "FEEDBACK_TOKEN": TOKEN,
            "ALERT_WEBHOOK_URL": receiver.url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        server = children.start(
            "serve", housing_command("serve", "--port", url.rsplit(":", 1)[1]), env=system.env
        )
        wait_for(system.served_version, timeout=90, what="the server", alive=server)
        yield system
        from services.monitor.launchers.local import read_lock, trainer_running

        if trainer_running(home):  # a test that failed half-way may leave the trainer running
            lock = read_lock(home)
            assert lock is not None
            os.killpg(int(lock["pid"]), signal.SIGTERM)
    shutil.rmtree(home, ignore_errors=True)


def test_drift_retrains_promotes_and_swaps_then_a_bad_champion_is_rolled_back(loop: Loop) -> None:
    assert loop.served_version() == 1

    # A market shift: mostly high-income districts, selling 25% above the data set's prices.
    loop.traffic("covariate-shift", 1000, price_factor=1.25)
    drift = loop.monitor()
    assert drift["status"] == RunStatus.DRIFT, json.dumps(drift)
    assert drift["psi"]["MedInc"] >= 0.2
    assert drift["action"] == Action.TRAINER_LAUNCHED
    assert drift["alerted"] is True
    assert loop.receiver.count() == 1

    # The trainer retrains, the gate promotes v2, and the server swaps it in under traffic.
    stop = threading.Event()
    swap: list[SimulationSummary] = []
    bodies, prices = loop.rows("covariate-shift", 20_000, 99, 1.25)

    def keep_sending() -> None:
        with httpx.Client(base_url=loop.url, timeout=10) as client:
            simulator = Simulator(client, token=TOKEN)
            swap.append(simulator.run(bodies, prices, rate=40, feedback_delay=0.2, stop=stop))

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        wait_for(
            lambda: ("promoted", 2) in loop.events() or None, timeout=240, what="v2 promoted by the gate"
        )
        wait_for(lambda: loop.served_version() == 2 or None, timeout=30, what="the server to swap in v2")
        time.sleep(1.5)  # v2 answers some of the traffic too
    finally:
        stop.set()
        sender.join(30)
    assert swap[0].failed == 0, swap[0].errors
    assert set(swap[0].versions) == {1, 2}, swap[0].versions
    loop.sent += swap[0].sent
    # v2 needs a live error of its own (ROLLBACK_MIN_ROWS labelled rows) to be the yardstick of a rollback.
    loop.traffic("covariate-shift", 300, price_factor=1.25)

    # A bad model forced in is rolled back by the next monitor run, once its live error is known.
    from services.common.registry import current_aliases
    from services.trainer.lifecycle import force_promote

    client, experiment_id = open_registry(*mlflow_store(loop.home))
    bad = register_bad_model(client, experiment_id, loop.database_url, loop.dataset)
    force_promote(client, loop.database_url, bad, actor="test", reason="a bad model on purpose")
    wait_for(
        lambda: loop.served_version() == bad or None, timeout=30, what="the server to swap in the bad model"
    )
    loop.traffic("steady", 600)
    rollback = loop.monitor()
    assert rollback["action"] == Action.ROLLED_BACK, json.dumps(rollback)
    assert current_aliases(client)[Role.CHAMPION] == 2
    assert (ModelEvent.ROLLED_BACK, 2) in loop.events()
    wait_for(lambda: loop.served_version() == 2 or None, timeout=30, what="the server to swap back to v2")
