"""``housing serve`` as the chart and the demo run it: ready on /readyz, drained on SIGTERM, and warning
at start when /feedback takes anyone's prices."""

from __future__ import annotations

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
