"""``housing serve`` as the chart and the demo run it: ready on /readyz, drained on SIGTERM, and warning
at start when /feedback takes anyone's prices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import Registry
from tests.integration.test_inference_support import (
    ROW,
    count,
    free_port,
    start_housing_serve,
    stop_housing_serve,
)

pytestmark = pytest.mark.timeout(300)  # includes training the session champion


def test_housing_serve_drains_the_prediction_log_on_sigterm(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "FEEDBACK_TOKEN"},
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path),
        "LOG_FLUSH_SECONDS": "5",  # nothing is written before SIGTERM: the drain must do it
    }
    process = start_housing_serve(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            served = sum(http.post("/predict", json=ROW).status_code == 200 for _ in range(40))
            assert http.get("/model").json()["version"] == 1
        assert served == 40
        assert count(database_url) == 0
        output = stop_housing_serve(process, timeout=30)
        assert "every prediction row this server took is in Postgres" in output
        # Locally nothing stops a server without a token, but it says what that leaves open.
        assert "FEEDBACK_TOKEN is not set: POST /feedback is open to anyone" in output
    finally:
        if process.poll() is None:
            process.kill()
    assert count(database_url) == 40, output


def test_housing_serve_logs_json_lines_with_the_request_id(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    """LOG_FORMAT=json: every line of a real server's output is one JSON object; the lines a request
    logs carry its id (the client's X-Request-ID when valid, else one made here), echoed in the response."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"},
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",  # a refused body is logged at DEBUG: a line inside a request
    }
    process = start_housing_serve(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            given = http.post("/predict", json={"MedInc": "x"}, headers={"X-Request-ID": "client-id-42"})
            made = http.post("/predict", json={"MedInc": "y"})
            spoofed = http.post("/predict", json=ROW, headers={"X-Request-ID": 'bad id"\\n'})
            other = http.get("/model", headers={"X-Request-ID": "model-call-7"})
        output = stop_housing_serve(process, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert (given.status_code, made.status_code, spoofed.status_code, other.status_code) == (
        422,
        422,
        200,
        200,
    )
    assert given.headers["x-request-id"] == "client-id-42"
    assert other.headers["x-request-id"] == "model-call-7"  # FastAPI's routes too
    made_id, spoofed_id = made.headers["x-request-id"], spoofed.headers["x-request-id"]
    assert made_id and spoofed_id and len({made_id, spoofed_id, "client-id-42"}) == 3
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # fails on a non-JSON line
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert not [line for line in lines if line["logger"].startswith("numba")]  # its compiler's DEBUG
    refused = {line["request_id"]: line for line in lines if "answered 422" in line["message"]}
    assert set(refused) == {"client-id-42", made_id}, refused
    assert refused["client-id-42"]["logger"] == "services.inference.hot_path"
    assert any("every prediction row this server took is in Postgres" in line["message"] for line in lines)
    assert not any(line.get("request_id") for line in lines if "Postgres" in line["message"])
