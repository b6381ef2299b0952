"""The model holder against a real MLflow store: hot swap on promotion, shadow scoring, registry gone."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest

from services.common.registry import MODEL_NAME, promote
from services.common.vocabulary import Role
from tests.conftest import Registry, signed
from tests.integration.test_inference_support import (
    ROW,
    ClientLoop,
    count,
    make_app,
    serving,
    settings_for,
    wait_for,
)

pytestmark = pytest.mark.timeout(300)  # includes training the session champion


def _second_version(registry: Registry) -> int:
    """Register v1's model again as a new version (a real registry version, without training again)."""
    client = registry.client
    first = client.get_model_version(MODEL_NAME, "1")
    created = client.create_model_version(MODEL_NAME, source=first.source, run_id=first.run_id)
    return signed(client, created.version)


def test_promotion_is_served_without_restart_and_without_failures(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    with serving(make_app(settings_for(tmp_path), database_url, champion_registry.uri)) as server:
        wait_for(lambda: server.services.holder.champion is not None, message="the champion")
        # v1 was trained: its compiled trees serve. v2 is registered without them: its pipeline serves.
        assert httpx.get(f"{server.url}/model").json()["runtime"] == "treelite"
        with ClientLoop(server.url) as loop:
            wait_for(lambda: len(loop.versions) > 50, message="traffic on v1")
            promote(champion_registry.client, _second_version(champion_registry))
            wait_for(lambda: 2 in loop.versions, message="v2 served")
            seen = len(loop.versions)
            wait_for(lambda: len(loop.versions) > seen + 50, message="traffic on v2")
        assert loop.failures == []
        first_v2 = loop.versions.index(2)
        assert set(loop.versions[:first_v2]) == {1} and set(loop.versions[first_v2:]) == {2}
        model = httpx.get(f"{server.url}/model").json()
        assert model["version"] == 2 and model["runtime"] == "scikit-learn"
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "model_swaps_total 1.0" in metrics
        assert 'model_info{run_id="' in metrics and 'version="2"' in metrics and 'version="1"' not in metrics
        served = len(loop.ids)
        wait_for(lambda: count(database_url) == served, message="every prediction logged")

    with psycopg.connect(database_url) as conn:
        logged = dict(conn.execute("SELECT id::text, model_version FROM predictions").fetchall())
    assert all(logged[pid] == version for pid, version in zip(loop.ids, loop.versions, strict=True))


def test_shadow_challenger_scores_the_same_rows(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    version = _second_version(champion_registry)
    champion_registry.client.set_registered_model_alias(MODEL_NAME, Role.CHALLENGER, str(version))
    settings = settings_for(tmp_path, shadow_challenger=True)
    with (
        serving(make_app(settings, database_url, champion_registry.uri)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        wait_for(lambda: server.services.holder.challenger is not None, message="the challenger")
        answers = [http.post("/predict", json=ROW).json() for _ in range(3)]
        answers += http.post("/predict", json={"instances": [ROW, ROW]}).json()["predictions"]
        assert {a["model_version"] for a in answers} == {1}
        assert http.get("/model").json()["challenger"]["version"] == version
        wait_for(lambda: count(database_url) == 10, message="5 champion + 5 challenger rows")

    with psycopg.connect(database_url) as conn:
        pairs = conn.execute(
            "SELECT c.id::text, c.model_version, s.model_version, c.prediction, s.prediction"
            " FROM predictions c JOIN predictions s ON s.shadow_of = c.id"
            " WHERE c.role = 'champion' AND s.role = 'challenger'"
        ).fetchall()
    assert sorted(p[0] for p in pairs) == sorted(a["prediction_id"] for a in answers)
    assert all(p[1:3] == (1, version) and p[3] == pytest.approx(p[4]) for p in pairs)


def test_registry_gone_keeps_serving_the_last_good_model(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    with (
        serving(make_app(settings_for(tmp_path), database_url, champion_registry.uri)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        wait_for(lambda: server.services.holder.champion is not None, message="the champion")
        # The registry breaks under the running server: its sqlite file is no database any more.
        database = champion_registry.folder / "mlflow.db"
        with database.open("r+b") as file:
            file.write(b"this is not a database any more" * 4096)
        wait_for(lambda: server.services.holder.last_error is not None, message="a failed poll")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            answer = http.post("/predict", json=ROW)
            assert answer.status_code == 200 and answer.json()["model_version"] == 1
        assert http.get("/readyz").status_code == 200
        model = http.get("/model").json()
        assert model["version"] == 1 and model["registry_error"]
        metrics = http.get("/metrics").text
        errors = next(line for line in metrics.splitlines() if line.startswith("model_registry_errors_total"))
        assert float(errors.split()[1]) >= 1
        assert "model_loaded 1.0" in metrics
