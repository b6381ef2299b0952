"""The inference API against a real uvicorn server, a real embedded Postgres and a real MLflow store."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from services.common.features import EXAMPLE, FEATURE_NAMES
from services.common.vocabulary import Role
from tests.conftest import Registry
from tests.integration.test_inference_support import ROW, count, make_app, serving, settings_for, wait_for

pytestmark = pytest.mark.timeout(300)  # includes training the session champion

OLD_TOKEN = "old-token-still-held-by-some-clients"
NEW_TOKEN = "new-token-the-clients-move-to-now"


def test_predictions_land_and_feedback_joins(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    # Two tokens, as during a rotation: clients holding either are served.
    settings = settings_for(tmp_path, feedback_token=f"{OLD_TOKEN},{NEW_TOKEN}")
    with (
        serving(make_app(settings, database_url, champion_registry.uri)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        wait_for(lambda: http.get("/readyz").status_code == 200, message="readyz")
        one = http.post("/predict", json=EXAMPLE)
        assert one.status_code == 200, one.text
        body = one.json()
        assert set(body) == {"predicted_price_usd", "prediction_id", "model_version"}
        assert body["model_version"] == 1
        assert 50_000 < body["predicted_price_usd"] < 600_000
        uuid.UUID(body["prediction_id"])

        batch = http.post("/predict", json={"instances": [ROW, {**ROW, "MedInc": 2.0}, ROW]})
        assert batch.status_code == 200, batch.text
        predictions = batch.json()["predictions"]
        assert len(predictions) == 3
        assert predictions[0]["predicted_price_usd"] == body["predicted_price_usd"]
        assert predictions[1]["predicted_price_usd"] < predictions[0]["predicted_price_usd"]

        wait_for(lambda: count(database_url) == 4, timeout=10, message="4 rows in predictions")
        # opaque strings to clients; UUIDv7 made by the server, in the order served
        ids = [body["prediction_id"], *(p["prediction_id"] for p in predictions)]
        assert all(uuid.UUID(one).version == 7 for one in ids)
        assert sorted(ids[1:]) == ids[1:]

        headers = {"Authorization": f"Bearer {OLD_TOKEN}"}
        truth = {"prediction_id": body["prediction_id"], "actual_price_usd": 452_600.0}
        first = http.post("/feedback", json=truth, headers=headers)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "recorded"
        again = http.post("/feedback", json=truth, headers={"Authorization": f"Bearer {NEW_TOKEN}"})
        assert again.status_code == 200 and again.json()["status"] == "already recorded"
        other = http.post("/feedback", json={**truth, "actual_price_usd": 1.0}, headers=headers)
        assert other.status_code == 409, other.text

        assert http.post("/feedback", json=truth).status_code == 401
        assert http.post("/feedback", json=truth, headers={"Authorization": "Bearer nope"}).status_code == 403
        unknown = http.post("/feedback", json={**truth, "prediction_id": str(uuid.uuid4())}, headers=headers)
        assert unknown.status_code == 404 and "prediction_id" in unknown.json()["detail"]

        model = http.get("/model").json()
        assert model["version"] == 1 and model["run_id"]
        assert "holdout_mae" in model["metrics"]
        assert http.get("/healthz").json() == {"status": "ok"}
        page = http.get("/")
        assert page.status_code == 200 and "MedInc" in page.text
        metrics = http.get("/metrics").text
        assert 'http_requests_total{method="POST",route="/predict",status="200"} 2.0' in metrics
        assert 'model_info{run_id="' in metrics and "model_loaded 1.0" in metrics
        assert "prediction_log_rows_written_total 4.0" in metrics

    with psycopg.connect(database_url) as conn:
        joined = conn.execute(
            "SELECT p.model_version, p.role, p.med_inc, p.prediction, f.actual, p.latency_ms"
            " FROM predictions p JOIN feedback f ON f.prediction_id = p.id"
        ).fetchall()
    assert len(joined) == 1
    version, role, med_inc, prediction, actual, latency_ms = joined[0]
    assert (version, role, med_inc) == (1, Role.CHAMPION, EXAMPLE["MedInc"])
    assert prediction == pytest.approx(body["predicted_price_usd"] / 100_000, abs=1e-6)
    assert actual == pytest.approx(4.526)
    assert latency_ms > 0


def test_not_ready_without_a_champion(registry: Registry, database_url: str, tmp_path: Path) -> None:
    with (
        serving(make_app(settings_for(tmp_path), database_url, registry.uri)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        wait_for(server.services.holder.polled.is_set, message="first poll")
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert "housing train" in ready.json()["detail"]
        refused = http.post("/predict", json=EXAMPLE)
        assert refused.status_code == 503 and "housing train" in refused.json()["detail"]
        assert http.get("/healthz").status_code == 200
        assert "model_loaded 0.0" in http.get("/metrics").text
        assert list(FEATURE_NAMES) == list(EXAMPLE)
