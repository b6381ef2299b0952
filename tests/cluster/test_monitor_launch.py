"""The monitor launches the trainer through the API server as its own ServiceAccount; that Job trains.

``housing monitor`` runs here as a local process with ``TRAINER_LAUNCHER=kubernetes`` and a
kubeconfig holding the monitor ServiceAccount's TokenRequest token (no admin credentials), against
the test's Postgres and MLflow store, with drift logged in the predictions:

1. with both nodes cordoned (the Job's Pod waits unscheduled, so the Job stays active) it creates the
   trainer Job; a second run while that Job is active creates none;
2. the Job is read back from the API server and run as a local process: its command and args, its
   env resolved from values, the Secret and ConfigMaps, its mounts as local folders; only the
   in-cluster addresses (the Secret's DATABASE_URL, the MLflow Service URL) and the mount paths are
   swapped for the test's. It trains and registers version 2;
3. the nodes uncordoned, kwok runs the Job's Pod to Succeeded, the Job controller marks the Job
   Complete, and the next monitor run reads that outcome.

The kubelet is kwok: the container itself is never started in the cluster (step 2 is its stand-in).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.registry import MODEL_NAME
from services.common.vocabulary import Action, RunStatus
from services.local.cluster import NODES
from services.local.processes import housing_command
from tests.conftest import Registry
from tests.deploy.helpers import CHART

from .helpers import IN_CLUSTER_DATABASE_URL, TEST_SIGNING_KEY, Kube

pytestmark = pytest.mark.timeout(300)
TRAINERS = "app.kubernetes.io/component=trainer,housing.io/release=cali-housing"


def log_shifted(url: str, dataset: Dataset) -> None:
    """Predictions of high-income districts (MedInc x1.5), all in the past when the monitor runs."""
    x = dataset.x_holdout.copy()
    x[:, 0] *= 1.5
    with psycopg.connect(url) as conn:
        start = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        insert_predictions(conn, x, start=start, spacing=timedelta(microseconds=50))
    time.sleep(len(x) * 50e-6 + 0.1)


def monitor(env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [*housing_command("monitor", "--json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def resolve_env(kube: Kube, namespace: str, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would build it (values, Secret and ConfigMap keys)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind, ref = (
            ("secret", source["secretRef"])
            if "secretRef" in source
            else ("configmap", source["configMapRef"])
        )
        data = kube.get(kind, ref["name"], "-n", namespace).get("data", {})
        env.update({k: base64.b64decode(v).decode() if kind == "secret" else v for k, v in data.items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        kind, key_ref = (
            ("secret", ref["secretKeyRef"])
            if "secretKeyRef" in ref
            else ("configmap", ref["configMapKeyRef"])
        )
        data = kube.get(kind, key_ref["name"], "-n", namespace).get("data", {})
        if key_ref["key"] not in data:
            assert key_ref.get("optional"), (
                f"{var['name']}: {kind} {key_ref['name']} has no key {key_ref['key']}"
            )
            continue
        value = data[key_ref["key"]]
        env[var["name"]] = base64.b64decode(value).decode() if kind == "secret" else value
    return env


def local_process(
    kube: Kube, job: dict[str, Any], swaps: dict[str, str], root: Path
) -> tuple[list[str], dict[str, str]]:
    """The Job's container as a local argv and environment: volumes become folders under ``root``."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    namespace = job["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    paths: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        folder = root / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for kind, key in (("configmap", "configMap"), ("secret", "secret")):
            if key in volume:
                name = volume[key].get("name") or volume[key]["secretName"]
                for file, value in kube.get(kind, name, "-n", namespace).get("data", {}).items():
                    (folder / file).write_bytes(
                        base64.b64decode(value) if kind == "secret" else value.encode()
                    )
        paths[mount["mountPath"]] = str(folder)
    env = resolve_env(kube, namespace, container)
    for name, value in env.items():
        if value in swaps:
            env[name] = swaps[value]
        elif value in paths:
            env[name] = paths[value]
        else:
            assert "://" not in value and ".svc" not in value, (
                f"{name}={value}: an in-cluster address left unswapped"
            )
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[0] == "housing", argv
    argv = [*housing_command(*argv[1:])]
    assert not any(arg.startswith("/") and arg not in paths for arg in argv[1:]), argv
    return argv, env


def trainer_jobs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get("jobs", "-n", namespace, "-l", TRAINERS)["items"]
    return items


def test_the_monitor_launches_a_job_that_trains(
    kube: Kube,
    releases: dict[str, str],
    database_url: str,
    champion_registry: Registry,
    dataset: Dataset,
    tmp_path: Path,
) -> None:
    namespace = releases["prod"]
    monitor_kube = kube.as_service_account("cali-housing-monitor", namespace)
    template = tmp_path / "trainer-job.yaml"
    template.write_text(
        kube.get("configmap", "cali-housing-trainer-job", "-n", namespace)["data"]["trainer-job.yaml"]
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path / "monitor-home"),
        "TRAINER_LAUNCHER": "kubernetes",
        "TRAINER_JOB_TEMPLATE": str(template),
        "TRAINER_NAMESPACE": namespace,
        "KUBECONFIG": str(monitor_kube.kubeconfig),
        "DRIFT_SAMPLE_ROWS": "1000",
        # The subject here is the Job; waiting for new labels is tests/integration/test_monitor_labels.py's.
        "RETRAIN_MIN_NEW_LABELS": "0",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    assert not trainer_jobs(kube, namespace)
    for node in NODES:
        kube.ok("cordon", node)
    try:
        log_shifted(database_url, dataset)
        first = monitor(env)
        assert first["status"] == RunStatus.DRIFT and first["action"] == Action.TRAINER_LAUNCHED, first
        (job,) = trainer_jobs(kube, namespace)
        assert job["metadata"]["labels"]["housing.io/drift-report"] == str(first["report_id"])

        log_shifted(database_url, dataset)
        second = monitor(env)
        assert second["action"] == Action.TRAINER_ALREADY_RUNNING, second
        assert [j["metadata"]["name"] for j in trainer_jobs(kube, namespace)] == [job["metadata"]["name"]]

        # The Job as the API server holds it (defaults filled in), run here.
        # The Secret's throwaway signing key and prod's placeholder public key become this test run's pair
        # (which signed the champion v1), as an operator's own pair replaces them: the trainer signs v2
        # with the key the Job reads from the Secret, and its gate checks both versions with the Job's keys.
        prod_keys = ",".join(
            yaml.safe_load((CHART / "values-prod.yaml").read_text())["modelSigning"]["publicKeys"]
        )
        swaps = {
            IN_CLUSTER_DATABASE_URL: database_url,
            "http://cali-housing-mlflow:5000": champion_registry.uri,
            TEST_SIGNING_KEY: os.environ["MODEL_SIGNING_KEY"],
            prod_keys: os.environ["MODEL_VERIFY_KEYS"],
        }
        argv, job_env = local_process(kube, job, swaps, tmp_path / "job")
        base = {
            k: os.environ[k]
            for k in ("PATH", "SCIKIT_LEARN_DATA", "OMP_NUM_THREADS", "MLFLOW_DISABLE_TELEMETRY")
            if k in os.environ
        }
        trained = subprocess.run(
            argv, env={**base, **job_env}, capture_output=True, text=True, timeout=240, check=False
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        versions = champion_registry.client.search_model_versions(f"name='{MODEL_NAME}'")
        assert len(versions) == 2, trained.stderr[-3000:]
    finally:
        for node in NODES:
            kube.kubectl("uncordon", node)

    # kwok runs the Pod to Succeeded; the Job controller completes the Job.
    kube.ok(
        "wait", "--for=condition=Complete", f"job/{job['metadata']['name']}", "-n", namespace, "--timeout=60s"
    )
    third = monitor(env)
    assert third["trainer"] == {"trainer": job["metadata"]["name"], "failed": False, "reason": "completed"}, (
        third
    )
