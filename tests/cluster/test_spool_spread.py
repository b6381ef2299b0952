"""Prod's inference replicas spread over the nodes, their spool claim bound to the EFS volume Terraform's
cloud-init writes (tests/cluster/helpers.spool_storage), on a real API server and kube-scheduler.

The prod release of the ``releases`` fixture is installed as Argo CD installs it, over the efs-spool class
and the PersistentVolume reserved for its claim; kwok plays the kubelet of two Nodes. What is real: the
claim binding to that volume (class, access mode, size, claimRef), the scheduler placing the replicas
with the chart's hostname spread and without a pod affinity. Not here: EFS, the CSI driver mounting it,
a third node (the k3s server): two kwok Nodes stand for the server and an agent.
"""

from __future__ import annotations

import time
from typing import Any

from services.local.cluster import NODES

from .helpers import Kube

INFERENCE = "app.kubernetes.io/component=inference"


def _serving(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    pods = kube.get("pods", "-n", namespace, "-l", INFERENCE)["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def test_prod_spool_binds_the_efs_volume_and_replicas_land_on_different_nodes(
    kube: Kube, releases: dict[str, str]
) -> None:
    namespace = releases["prod"]
    (claim,) = [
        c
        for c in kube.get("pvc", "-n", namespace)["items"]
        if c["metadata"]["name"].endswith("-inference-spool")
    ]
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["volumeName"] == f"{namespace}-inference-spool", "the volume reserved for it"
    assert claim["status"]["accessModes"] == ["ReadWriteMany"]
    volume = kube.get("pv", claim["spec"]["volumeName"])
    assert volume["spec"]["csi"]["driver"] == "efs.csi.aws.com"

    # The HPA raises the Deployment to its minimum (2) after helm's --wait saw the first replica.
    deadline = time.monotonic() + 90
    while len(pods := _serving(kube, namespace)) < 2 and time.monotonic() < deadline:
        time.sleep(2)
    assert len(pods) >= 2, [p["metadata"]["name"] for p in pods]
    nodes = [p["spec"]["nodeName"] for p in pods]
    assert len(set(nodes)) == len(nodes) == len(NODES), f"replicas share a node: {nodes}"
    for pod in pods:
        assert "podAffinity" not in pod["spec"].get("affinity", {})
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claim["metadata"]["name"] in claims, "every replica mounts the one spool claim"
