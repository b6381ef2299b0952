"""Nothing from the registry runs unless the trainer signed it: a real ``housing serve``, the monitor and
the gate, each handed an unsigned version and a signed one altered in the store, whose pickles would
write a marker file if anything unpickled them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.common.model_signing import ModelRefused
from services.common.registry import MODEL_NAME
from services.common.signed_artifacts import SIGNED_RUN_ARTIFACTS
from services.common.vocabulary import Role
from tests.conftest import Registry, session_keys
from tests.integration.tampered_models import register_altered_copy, register_unsigned_payload
from tests.integration.test_inference_support import (
    ROW,
    free_port,
    make_app,
    serving,
    settings_for,
    start_housing_serve,
    stop_housing_serve,
    wait_for,
)

pytestmark = pytest.mark.timeout(400)  # includes training the session champion


def _metric(text: str, name: str, role: str) -> float | None:
    found = re.search(rf'^{name}\{{role="{role}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_the_session_champion_is_signed_for_every_file_a_reader_opens(champion_registry: Registry) -> None:
    v1 = champion_registry.client.get_model_version(MODEL_NAME, "1")
    manifest = session_keys().verified_manifest(1, dict(v1.tags))
    assert {"model/MLmodel", "model/model.pkl", *SIGNED_RUN_ARTIFACTS} <= set(manifest), manifest


def test_housing_serve_refuses_an_unsigned_and_an_altered_champion_and_keeps_serving_v1(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path / "home"),
        "MODEL_POLL_SECONDS": "0.3",
    }
    process = start_housing_serve(env, port)
    client = champion_registry.client
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/model").json()["refused"] == []
            unsigned = register_unsigned_payload(client, champion_registry.experiment_id, marker)

            def refused(version: int) -> dict[str, object] | None:
                found = [r for r in http.get("/model").json()["refused"] if r["version"] == version]
                return found[0] if found else None

            wait_for(lambda: refused(unsigned), message=f"v{unsigned} refused")
            time.sleep(1.5)  # ~5 more polls: the refusal is not retried, nor logged again
            described = http.get("/model").json()
            assert described["version"] == 1
            assert described["refused"][0]["role"] == Role.CHAMPION
            assert described["refused"][0]["reason"].startswith("it is not signed (no signing.manifest")
            metrics = http.get("/metrics").text
            assert _metric(metrics, "model_refused", "champion") == unsigned
            assert _metric(metrics, "model_refusals_total", "champion") == 1
            answer = http.post("/predict", json=ROW)
            assert answer.status_code == 200 and answer.json()["model_version"] == 1

            altered = register_altered_copy(client, champion_registry.experiment_id, marker)
            wait_for(lambda: refused(altered), message=f"v{altered} refused")
            assert refused(altered) is not None
            assert refused(altered)["reason"] == (  # type: ignore[index]
                "model/model.pkl does not match its signed digest (altered after signing?)"
            )
            assert http.post("/predict", json=ROW).json()["model_version"] == 1
            assert _metric(http.get("/metrics").text, "model_refused", "champion") == altered

            # The alias back on a signed version: the refusal is over.
            client.set_registered_model_alias(MODEL_NAME, Role.CHAMPION, "1")
            wait_for(lambda: http.get("/model").json()["refused"] == [], message="the refusal cleared")
            assert _metric(http.get("/metrics").text, "model_refused", "champion") == 0
        output = stop_housing_serve(process, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not marker.exists(), "a refused pickle was unpickled"
    assert output.count(f"model version {unsigned} refused: it is not signed") == 1, output
    assert output.count(f"model version {altered} refused: model/model.pkl does not match") == 1, output
    assert "still serving version 1" in output


def test_with_only_a_refused_champion_the_server_is_not_ready_and_says_why(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    version = register_unsigned_payload(champion_registry.client, champion_registry.experiment_id, marker)
    app = make_app(settings_for(tmp_path), database_url, champion_registry.uri)
    with serving(app) as server, httpx.Client(base_url=server.url) as http:
        wait_for(lambda: server.services.holder.refused, message="the refusal")
        ready = http.get("/readyz")
        model = http.get("/model")
        predict = http.post("/predict", json=ROW)
    assert ready.status_code == 503
    assert ready.json()["detail"].startswith(f"model version {version} refused: it is not signed")
    assert ready.json()["detail"].endswith("no earlier champion to serve")
    assert model.status_code == 503 and model.json()["refused"][0]["version"] == version
    assert predict.status_code == 503
    assert not marker.exists()


def test_a_monitor_run_stops_on_a_refused_champion_and_its_row_says_why(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    version = register_altered_copy(champion_registry.client, champion_registry.experiment_id, marker)
    result = _housing(
        ["monitor", "--json"],
        _stores(champion_registry, tmp_path, database_url),
    )
    assert result.returncode != 0, result.stdout
    assert f"model version {version} refused: model/model.pkl does not match its signed digest" in (
        result.stdout + result.stderr
    )
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, model_version, details->>'error' FROM drift_reports ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row is not None and row[0] == "error" and row[1] == version, row
    assert f"model version {version} refused" in row[2]
    assert not marker.exists()


def test_the_gate_stops_on_a_refused_champion_and_exits_non_zero(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    version = register_unsigned_payload(champion_registry.client, champion_registry.experiment_id, marker)
    result = _housing(
        ["promote", "1"],
        _stores(champion_registry, tmp_path, database_url),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: model version {version} refused: it is not signed")
    ), result.stderr
    aliases = champion_registry.client.get_registered_model(MODEL_NAME).aliases
    assert int(aliases[Role.CHAMPION]) == version  # nothing moved
    assert not marker.exists()


def _stores(registry: Registry, home: Path, database_url: str) -> dict[str, str]:
    """The environment of a ``housing`` command on this test's database, registry and home."""
    return {"DATABASE_URL": database_url, "MLFLOW_TRACKING_URI": registry.uri, "HOUSING_HOME": str(home)}


def _housing(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from services.cli import main; main()", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_housing_keys_sign_vouches_for_a_version_registered_before_signing(
    champion_registry: Registry, tmp_path: Path
) -> None:
    client = champion_registry.client
    first = client.get_model_version(MODEL_NAME, "1")
    version = int(client.create_model_version(MODEL_NAME, first.source, first.run_id).version)
    with pytest.raises(ModelRefused, match="it is not signed"):
        session_keys().verified_manifest(
            version, dict(client.get_model_version(MODEL_NAME, str(version)).tags)
        )
    result = _housing(
        ["keys", "sign", str(version)],
        {"MLFLOW_TRACKING_URI": champion_registry.uri, "HOUSING_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    tags = dict(client.get_model_version(MODEL_NAME, str(version)).tags)
    assert session_keys().verified_manifest(version, tags) == session_keys().verified_manifest(
        1, dict(first.tags)
    )
