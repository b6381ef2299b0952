"""Admission enforced by the server, asked with the monitor's own token: the trainer policy, Pod Security.

The Job under test is the one the monitor creates: the release's trainer-job ConfigMap (read back
from the API server) stamped by ``services.monitor.launchers.kubernetes.stamp_job``. Each hostile
variant of tests/deploy/test_admission_policy.py's catalogue (where cel-python checks the same
expressions offline, fast) is sent with ``--dry-run=server``, which runs every admission plugin and
policy but stores nothing. The server's typed CEL checker, the defaulting that runs before the
policy and the binding's namespace match are all real here.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from services.monitor.launchers.kubernetes import stamp_job
from tests.deploy.test_admission_policy import HOSTILE

from .helpers import Kube

Job = dict[str, Any]
# Variants the server rewrites before any policy sees them: the v1 conversion sets the deprecated
# `serviceAccount` from `serviceAccountName`, so a Pod would still run as the trainer.
REWRITTEN = {"deprecated_service_account"}


def trainer_job(kube: Kube, namespace: str) -> Job:
    """The Job the monitor would create for drift report 42, from the template the API server holds."""
    cm = kube.get("configmap", "cali-housing-trainer-job", "-n", namespace)
    template: Job = yaml.safe_load(cm["data"]["trainer-job.yaml"])
    return stamp_job(template, 42)


def dry_run_create(kube: Kube, doc: dict[str, Any], namespace: str) -> tuple[bool, str]:
    proc = kube.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-o", "name", "-f", "-", stdin=json.dumps(doc)
    )
    return proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def monitor(kube: Kube, releases: dict[str, str]) -> Kube:
    namespace = releases["prod"]
    identity = kube.as_service_account("cali-housing-monitor", namespace)
    assert identity.whoami() == f"system:serviceaccount:{namespace}:cali-housing-monitor"
    # A new policy takes effect a moment after it is created: wait until a known-bad Job is refused.
    job = trainer_job(kube, namespace)
    job["spec"]["template"]["spec"]["hostNetwork"] = True
    deadline = time.monotonic() + 30
    while dry_run_create(identity, job, namespace)[0]:
        assert time.monotonic() < deadline, "the trainer admission policy never took effect"
        time.sleep(0.5)
    return identity


def test_the_job_the_launcher_builds_is_admitted(kube: Kube, monitor: Kube, releases: dict[str, str]) -> None:
    namespace = releases["prod"]
    admitted, error = dry_run_create(monitor, trainer_job(kube, namespace), namespace)
    assert admitted, error


@pytest.mark.parametrize(("mutate", "expected"), HOSTILE, ids=[m.__name__ for m, _ in HOSTILE])
def test_every_hostile_variant_is_refused_with_the_policys_message(
    kube: Kube, monitor: Kube, releases: dict[str, str], mutate: Callable[[Job], None], expected: set[str]
) -> None:
    namespace = releases["prod"]
    job = copy.deepcopy(trainer_job(kube, namespace))
    mutate(job)
    if mutate.__name__ in REWRITTEN:
        proc = monitor.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-", stdin=json.dumps(job)
        )
        assert proc.returncode == 0, proc.stderr
        spec = json.loads(proc.stdout)["spec"]["template"]["spec"]
        assert spec["serviceAccount"] == spec["serviceAccountName"] == "cali-housing-trainer"
        return
    admitted, error = dry_run_create(monitor, job, namespace)
    assert not admitted, f"{mutate.__name__} was admitted"
    assert "denied request" in error and "ValidatingAdmissionPolicy" in error, error
    assert any(label in error for label in expected), error


def test_pod_security_refuses_a_privileged_pod(kube: Kube, releases: dict[str, str]) -> None:
    namespace = releases["prod"]
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]
        },
    }
    admitted, error = dry_run_create(kube, pod, namespace)
    assert not admitted
    assert 'violates PodSecurity "restricted:v1.37"' in error and "privileged" in error, error
    # The same Pod made to fit "restricted" is admitted: the refusal is about privilege, not the Pod.
    fitting = copy.deepcopy(pod)
    fitting["spec"]["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    fitting["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    admitted, error = dry_run_create(kube, fitting, namespace)
    assert admitted, error
