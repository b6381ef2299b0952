"""Wrong values are refused at render time, with a message that names the key to fix."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .helpers import REQUIRED_SETS, helm_template


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "inference.replicaCount=two"], "/inference/replicaCount"),
        (["--set-string", "inference.autoscaling.enabled=yes"], "/inference/autoscaling/enabled"),
        (["--set", "image.tag=latest"], "/image/tag"),
        (["--set", "monitor.psiThreshold=-1"], "/monitor/psiThreshold"),
        (["--set", "monitor.driftShareThreshold=1.5"], "/monitor/driftShareThreshold"),
        (["--set", "config.logLevel=LOUD"], "/config/logLevel"),
        (["--set", "config.logFormat=xml"], "/config/logFormat"),
        (["--set", "mlflow.server.artifacts.type=ftp"], "/mlflow/server/artifacts/type"),
        (["--set", "secrets.keys.databaseUrl=null"], "databaseUrl"),
        (["--set", "inference.resources=null"], "inference"),
        (["--set", "replicas=3"], "'replicas' not allowed"),
        (["--set", "inference.replica=3"], "'replica' not allowed"),
        (["--set-json", 'modelSigning.publicKeys=["not a key"]'], "/modelSigning/publicKeys/0"),
    ],
)
def test_schema_rejects_bad_values(tool: Callable[[str], str], args: list[str], expected: str) -> None:
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, *args])
    assert proc.returncode != 0, f"accepted {args}"
    assert expected in proc.stderr, proc.stderr


def test_missing_secret_reference_names_the_secret_to_create(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), ["--set", "image.tag=0123abc"])
    assert proc.returncode != 0
    for needle in (
        "secrets.existingSecret",
        "DATABASE_URL",
        "kubectl create secret generic",
        "MLFLOW_BACKEND_STORE_URI",
    ):
        assert needle in proc.stderr, proc.stderr


def test_missing_model_signing_key_names_the_command_that_makes_one(tool: Callable[[str], str]) -> None:
    """Without a public key every pod would refuse every version: the chart refuses to render instead."""
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, "--set-json", "modelSigning.publicKeys=[]"])
    assert proc.returncode != 0
    for needle in ("modelSigning.publicKeys", "housing keys new", "MODEL_SIGNING_KEY"):
        assert needle in proc.stderr, proc.stderr


def test_missing_secret_reference_also_names_the_signing_key(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), ["--set", "image.tag=0123abc"])
    assert "MODEL_SIGNING_KEY" in proc.stderr and "housing keys new" in proc.stderr, proc.stderr


def test_missing_image_tag_is_refused(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), ["--set", "secrets.existingSecret=s"])
    assert proc.returncode != 0
    assert "image.tag" in proc.stderr


def test_registry_needed_when_the_server_is_off(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, "--set", "mlflow.server.enabled=false"])
    assert proc.returncode != 0
    assert "config.mlflowTrackingUri" in proc.stderr


def test_s3_artifacts_need_a_bucket(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, "--set", "mlflow.server.artifacts.type=s3"])
    assert proc.returncode != 0
    assert "mlflow.server.artifacts.s3Uri" in proc.stderr
