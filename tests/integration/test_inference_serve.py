"""``housing serve`` as the chart and the demo run it: ready on /readyz, drained on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Registry
from tests.integration.test_inference_support import ROW, count, free_port

pytestmark = pytest.mark.timeout(300)  # includes training the session champion


def test_housing_serve_drains_the_prediction_log_on_sigterm(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path),
        "LOG_FLUSH_SECONDS": "5",  # nothing is written before SIGTERM: the drain must do it
    }
    command = [sys.executable, "-c", "from services.cli import main; main()", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "housing serve never became ready"
            time.sleep(0.2)
        with httpx.Client(base_url=url) as http:
            served = sum(http.post("/predict", json=ROW).status_code == 200 for _ in range(40))
            assert http.get("/model").json()["version"] == 1
        assert served == 40
        assert count(database_url) == 0
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        # uvicorn re-raises the signal after a clean shutdown, so the parent sees "terminated by SIGTERM".
        assert process.returncode in (0, -signal.SIGTERM), output
        assert "the prediction log is drained" in output
    finally:
        if process.poll() is None:
            process.kill()
    assert count(database_url) == 40, output
