"""The rollout scenario, run once on the still-empty cluster: Deployments on kwok nodes, then a drain.

A release of its own (dev values, spool claim ReadWriteMany so its replicas may spread) is installed
with node ``kwok-node-1`` cordoned, so every Pod lands on ``kwok-node-2``. Then:

1. ``kubectl drain kwok-node-2`` with node 1 still cordoned: the first inference Pod is evicted, its
   replacement cannot be scheduled, and the PodDisruptionBudget (minAvailable 1) refuses the second
   eviction: the drain gives up after its timeout, one inference Pod still serving;
2. node 1 uncordoned: the replacement starts there, and the same drain now finishes.

What happened is recorded here and asserted in tests/cluster/test_rollout.py (a fixture that fails
would only say "error" for every test that needs it).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .helpers import Kube, install, prepare_namespace

NAMESPACE = "housing-rollout"
DRAINED, SPARE = "kwok-node-2", "kwok-node-1"
INFERENCE = "app.kubernetes.io/component=inference"


@dataclass
class Rollout:
    install: subprocess.CompletedProcess[str]
    deployments: list[dict[str, Any]] = field(default_factory=list)
    pods_before: dict[str, str] = field(default_factory=dict)  # pod -> node
    pdb: dict[str, Any] = field(default_factory=dict)
    hpa: dict[str, Any] = field(default_factory=dict)
    blocked_drain: subprocess.CompletedProcess[str] | None = None
    serving_while_blocked: dict[str, str] = field(default_factory=dict)
    drain: subprocess.CompletedProcess[str] | None = None
    pods_after: dict[str, str] = field(default_factory=dict)
    deployments_after: list[dict[str, Any]] = field(default_factory=list)


def _pods(kube: Kube, selector: str) -> dict[str, str]:
    """Running, not terminating Pods -> their node."""
    items = kube.get("pods", "-n", NAMESPACE, "-l", selector)["items"]
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in items
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def _settled_budget(kube: Kube) -> dict[str, Any]:
    """The PodDisruptionBudget once the disruption controller has counted every running inference Pod.

    Its status is written asynchronously after the Pods are Ready: read at once on a loaded machine, it
    still counted 1 of the 2 (expectedPods 1; a failure seen once in CI). Up to 30 s, then whatever it
    says.
    """
    deadline = time.monotonic() + 30
    while True:
        pdb: dict[str, Any] = kube.get("pdb", "-n", NAMESPACE)["items"][0]
        status, running = pdb.get("status", {}), len(_pods(kube, INFERENCE))
        counted = status.get("expectedPods") == running and status.get("currentHealthy") == running
        if counted or time.monotonic() > deadline:
            return pdb
        time.sleep(0.5)


def drain_scenario(kube: Kube) -> Rollout:
    prepare_namespace(kube, NAMESPACE, "dev")
    kube.ok("cordon", SPARE)
    try:
        result = Rollout(
            install(kube, NAMESPACE, "dev", "--set", "inference.spool.persistence.accessMode=ReadWriteMany")
        )
        if result.install.returncode != 0:
            return result
        result.deployments = kube.get("deployments", "-n", NAMESPACE)["items"]
        result.pods_before = _pods(kube, "app.kubernetes.io/instance=cali-housing")
        result.pdb = _settled_budget(kube)
        result.hpa = kube.get("hpa", "-n", NAMESPACE)["items"][0]
        drain = ("drain", DRAINED, "--ignore-daemonsets", "--delete-emptydir-data")
        result.blocked_drain = kube.kubectl(*drain, "--timeout=15s", timeout=60)
        result.serving_while_blocked = _pods(kube, INFERENCE)
        kube.ok("uncordon", SPARE)
        result.drain = kube.kubectl(*drain, "--timeout=60s", timeout=90)
        kube.ok("rollout", "status", "deployment", "-n", NAMESPACE, "-l", INFERENCE, "--timeout=60s")
        result.pods_after = _pods(kube, "app.kubernetes.io/instance=cali-housing")
        result.deployments_after = kube.get("deployments", "-n", NAMESPACE)["items"]
        return result
    finally:
        kube.kubectl("uncordon", SPARE)
        kube.kubectl("uncordon", DRAINED)
