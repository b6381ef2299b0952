"""A real Kubernetes control plane for the run: ``housing cluster up``'s code as a session fixture.

The cluster starts once per run in a temporary folder (~10 s) and is stopped and removed when the
run ends, a failed test included; its processes also get SIGKILL if pytest itself dies (Linux
parent-death signal). Without the binaries (``make tools``) the tests skip, and fail under CI=true.

``releases`` installs the chart once per run, with the dev values and with the prod values, each
into an empty namespace labelled as Argo CD labels it, before any Prometheus Operator CRD exists.
Before them, ``rollout`` installs a release of its own while the cluster is still empty, and drains
a node under it (the drain must meet only that release's Pods: see tests/cluster/test_rollout.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from services.local.cluster import BINARIES, Layout, running_cluster
from tests.deploy.helpers import missing

from .helpers import TOOLS, Kube, install, prepare_namespace
from .rollout import Rollout, drain_scenario

NAMESPACES = {"dev": "housing-dev", "prod": "housing-prod"}


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """The cluster as its admin (``system:masters``)."""
    absent = [name for name in (*BINARIES, "helm") if not os.access(TOOLS / name, os.X_OK)]
    if absent:
        missing(
            f"{', '.join(absent)} not in .tools/bin: run `make tools` (builds Kubernetes; needs Go 1.26+)"
        )
    layout = Layout(tmp_path_factory.mktemp("cluster"), TOOLS)
    with running_cluster(layout) as status:
        yield Kube(status.kubeconfig, layout)


@pytest.fixture(scope="session")
def rollout(kube: Kube) -> Rollout:
    """A release rolled out on the empty cluster and a node drained under it; tests read what happened."""
    return drain_scenario(kube)


@pytest.fixture(scope="session")
def releases(kube: Kube, rollout: Rollout) -> dict[str, str]:
    """values name -> namespace, each installed with ``helm install --wait`` (no operator CRDs yet)."""
    for values, namespace in NAMESPACES.items():
        prepare_namespace(kube, namespace, values)
        proc = install(kube, namespace, values)
        assert proc.returncode == 0, f"helm install ({values}) failed:\n{proc.stderr}\n{proc.stdout[-2000:]}"
    return dict(NAMESPACES)
