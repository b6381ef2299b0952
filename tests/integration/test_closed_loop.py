"""The closed loop end to end, smaller than the demo: real parts on temporary ground.

An embedded Postgres (the session's, a fresh database), an MLflow store in a temporary HOUSING_HOME, a real
``housing serve`` subprocess, real ``housing monitor`` runs launching a real ``housing train``. Shifted
traffic whose prices are not known yet must lead to drift, one alert and a wait for labels (no trainer:
it would learn nothing v1 has not seen); once the prices arrive, to one launch, a retrained v2 that the
gate promotes with its evidence, and the server swapping it in without a failed request; a bad champion
forced in must be rolled back by the monitor; then, with the prices of v2's market withheld, the
label-free estimate says v2 errs beyond its holdout MAE, and launches the trainer because the labelled
rows since v2's training (the gate's, the traffic since) are new to v2.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from services.common.connections import mlflow_store, open_registry
from services.common.dataset import Dataset
from services.common.model_signing import Signer
from services.common.vocabulary import Action, AlertKind, ModelEvent, Plan, Role, RunStatus, Trigger
from services.local.alert_receiver import AlertReceiver
from services.local.bad_model import register_bad_model
from services.local.demo import Knobs
from services.local.processes import Children, wait_for
from services.local.scenarios import scenario_spec, scenario_traffic
from services.local.simulator import SimulationSummary
from services.local.stack import Stack
from tests.conftest import world_readable_tempdir

pytestmark = pytest.mark.timeout(420)

TOKEN = "closed-loop-test-token-of-32-chars"


class Loop:
    """The running stack, its data set, and the traffic the test sends."""

    def __init__(self, stack: Stack, dataset: Dataset) -> None:
        self.stack = stack
        self.dataset = dataset
        self.phase = 0

    def traffic(
        self, scenario: str, rows: int, price_factor: float | None = None, *, withhold: bool = False
    ) -> SimulationSummary:
        self.phase += 1
        bodies, prices = self.rows(scenario, rows, self.phase, price_factor)
        summary = self.stack.send(bodies, prices, rate=0, feedback_delay=0, withhold=withhold)
        assert (summary.failed, summary.feedback_failed) == (0, 0), summary.errors
        self.stack.wait_logged()
        return summary

    def monitor(self) -> dict[str, Any]:
        report, _ = self.stack.monitor(timeout=180)
        return report

    def rows(
        self, scenario: str, n: int, seed: int, price_factor: float | None = None
    ) -> tuple[list[dict[str, float]], list[float]]:
        spec = scenario_spec(scenario, price_factor)
        rng = np.random.default_rng([11, seed])
        return scenario_traffic(self.dataset.x_holdout, self.dataset.y_holdout, spec, n, rng)


@pytest.fixture
def loop(database_url: str, dataset: Dataset) -> Iterator[Loop]:
    from pydantic import SecretStr

    from services.common.signing_keys import local_keypair
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    home = world_readable_tempdir("housing-loop-")
    client, experiment_id = open_registry(*mlflow_store(home))
    # The stack's children check the pair made under its home: v1 is signed with it, as in the demo.
    pair = local_keypair(home)
    settings = TrainerSettings(
        housing_home=home, model_signing_key=SecretStr(pair.private), model_verify_keys=pair.public
    )
    summary = run_training(client, experiment_id, database_url, dataset, settings)
    assert summary.version == 1 and summary.gate is not None and summary.gate.decision.passed

    with Children(home / "logs") as children, AlertReceiver() as receiver:
        stack = Stack(home, children, receiver, token=TOKEN)
        stack.configure(database_url, Knobs().env())
        stack.start_server()
        yield Loop(stack, dataset)
        stack.stop_trainer()  # a test that failed half-way may leave the trainer running
    shutil.rmtree(home, ignore_errors=True)


def test_drift_retrains_promotes_and_swaps_then_a_bad_champion_is_rolled_back(loop: Loop) -> None:
    assert loop.stack.served_version() == 1

    # A market shift: mostly high-income districts, selling 25% above the data set's prices, which
    # are not known yet: drift, an alert, and a wait for labels.
    needed = Knobs().new_labels_needed
    shifted = loop.traffic("covariate-shift", 1000, price_factor=1.25, withhold=True)
    waiting = loop.monitor()
    assert waiting["status"] == RunStatus.DRIFT, json.dumps(waiting)
    assert waiting["psi"]["MedInc"] >= 0.2
    assert (waiting["plan"], waiting["action"]) == (Plan.WAIT_FOR_LABELS, Action.NONE)
    assert f"waiting for labels: 0 of {needed}" in waiting["detail"]
    assert waiting["alerted"] is True and loop.stack.receiver.count() == 1

    # The prices arrive: one launch, in the same drift episode (no second drift alert; the labels may
    # start a live-error episode: v1 errs on the moved market).
    arrived = loop.stack.post_labels(shifted.withheld)
    assert (arrived.feedback_posted, arrived.feedback_failed) == (1000, 0)
    drift = loop.monitor()
    assert drift["action"] == Action.TRAINER_LAUNCHED, json.dumps(drift)
    assert drift["labels"]["new"] == needed
    kinds = [str(body["kind"]).split(", ") for _, body in loop.stack.receiver.alerts]
    assert [AlertKind.DRIFT in kind for kind in kinds] == [True] + [False] * (len(kinds) - 1), kinds

    # The trainer retrains, the gate promotes v2, and the server swaps it in under traffic.
    stop = threading.Event()
    swap: list[SimulationSummary] = []
    bodies, prices = loop.rows("covariate-shift", 20_000, 99, 1.25)

    def keep_sending() -> None:
        swap.append(loop.stack.send(bodies, prices, rate=40, feedback_delay=0.2, stop=stop))

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        wait_for(
            lambda: (ModelEvent.PROMOTED, 2) in loop.stack.observation.events() or None,
            timeout=240,
            what="v2 promoted by the gate",
        )
        wait_for(
            lambda: loop.stack.served_version() == 2 or None, timeout=30, what="the server to swap in v2"
        )
        time.sleep(1.5)  # v2 answers some of the traffic too
    finally:
        stop.set()
        sender.join(30)
    decision = loop.stack.observation.decision_after(1)
    # The demo reads the gate's figures with the decision (its evidence, where the gate records one).
    assert decision is not None and decision.figures.get("version") == 2
    assert swap[0].failed == 0, swap[0].errors
    assert set(swap[0].versions) == {1, 2}, swap[0].versions
    # v2 needs a live error of its own (ROLLBACK_MIN_ROWS labelled rows) to be the yardstick of a rollback.
    loop.traffic("covariate-shift", 300, price_factor=1.25)

    # A bad model forced in is rolled back by the next monitor run, once its live error is known.
    from services.common.registry import current_aliases
    from services.trainer.lifecycle import force_promote

    client, experiment_id = open_registry(*mlflow_store(loop.stack.home))
    signer = Signer.from_text(loop.stack.env["MODEL_SIGNING_KEY"])
    bad = register_bad_model(client, experiment_id, loop.stack.database_url, loop.dataset, signer)
    force_promote(client, loop.stack.database_url, bad, actor="test", reason="a bad model on purpose")
    wait_for(
        lambda: loop.stack.served_version() == bad or None,
        timeout=30,
        what="the server to swap in the bad model",
    )
    loop.traffic("steady", 600)
    rollback = loop.monitor()
    assert rollback["action"] == Action.ROLLED_BACK, json.dumps(rollback)
    assert current_aliases(client)[Role.CHAMPION] == 2
    assert (ModelEvent.ROLLED_BACK, 2) in loop.stack.observation.events()
    wait_for(
        lambda: loop.stack.served_version() == 2 or None, timeout=30, what="the server to swap back to v2"
    )

    # Delayed labels: v2's market again, its prices withheld until the monitor ran. The label-free
    # estimate says v2 errs beyond its holdout MAE here; the labelled rows since v2's training are new
    # to it (at least RETRAIN_MIN_NEW_LABELS), so it launches the trainer.
    delayed = loop.traffic("covariate-shift", 600, price_factor=1.25, withhold=True)
    estimated = loop.monitor()
    assert Trigger.ESTIMATED_DEGRADATION in estimated["triggers"], json.dumps(estimated)
    assert estimated["labelled_rows"] == 0 and estimated["live_mae"] is None
    assert estimated["estimated_mae"] > 1.2 * estimated["reference_mae"]
    assert estimated["action"] == Action.TRAINER_LAUNCHED and estimated["labels"]["new"] == needed
    arrived = loop.stack.post_labels(delayed.withheld)
    assert (arrived.feedback_posted, arrived.feedback_failed) == (600, 0)
