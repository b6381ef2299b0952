"""Install from zero against a real API server: what a first ``helm install`` or Argo CD sync meets.

The dev values (``values.yaml`` plus what a user must set) and the prod values are installed with
``helm install --wait`` into empty namespaces (labelled as Argo CD labels them: Pod Security
"restricted" enforced), hooks included, first without the Prometheus Operator's CRDs, then with
them. kwok plays the kubelet, so Pods become Ready and Job Pods succeed without a container: what is
tested is the API server's side (schemas, defaulting, admission, RBAC, claims binding, hooks
finishing), not the images. The CRDs are minimal copies (tests/cluster/crds).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import CHART, KUBE_VERSION

from .conftest import NAMESPACES
from .helpers import ARGOCD, CRDS, RELEASE, VALUES, Kube, install, prepare_namespace, release_objects

MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}


def kinds(kube: Kube, namespace: str) -> set[str]:
    return {o["kind"] for o in release_objects(kube, namespace)}


@pytest.fixture(scope="module")
def operator_crds(kube: Kube, releases: dict[str, str]) -> None:
    """The Prometheus Operator's CRDs, installed after the releases that must not see them."""
    kube.ok("apply", "--server-side", "-f", str(CRDS / "prometheus-operator.yaml"))
    for name in ("servicemonitors", "prometheusrules"):
        kube.ok("wait", "--for=condition=Established", f"crd/{name}.monitoring.coreos.com", "--timeout=30s")


def test_the_server_runs_the_version_the_chart_is_tested_against(kube: Kube) -> None:
    version = json.loads(kube.ok("version", "-o", "json"))["serverVersion"]
    assert version["gitVersion"].startswith("v" + KUBE_VERSION.rsplit(".", 1)[0] + "."), version
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    # helm refuses an install whose server version the chart's kubeVersion excludes: /version must be real.
    assert chart["kubeVersion"].startswith(">="), chart["kubeVersion"]


@pytest.mark.parametrize("values", sorted(NAMESPACES))
def test_install_from_zero_completes_hooks_included(
    kube: Kube, releases: dict[str, str], values: str
) -> None:
    namespace = releases[values]
    status = json.loads(kube.helm("status", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed", status["info"]
    # The pre-install migrate hook ran to completion (--wait waits for it; it is deleted on success).
    hooks = kube.helm("get", "hooks", RELEASE, "-n", namespace).stdout
    assert "kind: Job" in hooks and "pre-install" in hooks
    assert not kube.get("jobs", "-n", namespace, "-l", "app.kubernetes.io/component=migrate")["items"]
    for claim in kube.get("pvc", "-n", namespace)["items"]:
        assert claim["status"]["phase"] == "Bound", claim["metadata"]["name"]
    # Without the operator's CRDs no monitoring object is rendered, though prod asks for them.
    assert not kinds(kube, namespace) & MONITORING_KINDS


def _fingerprint(objects: list[dict[str, Any]]) -> dict[str, str]:
    """What a change would move: the spec generation where there is one, else the resourceVersion;
    for a ResourceQuota (no generation; its controller rewrites the status, and so the resourceVersion,
    whenever usage moves) its spec."""
    result = {}
    for o in objects:
        meta = o["metadata"]
        if o["kind"] == "ResourceQuota":
            result[f"{o['kind']}/{meta['name']}"] = json.dumps(o["spec"], sort_keys=True)
            continue
        result[f"{o['kind']}/{meta['name']}"] = str(meta.get("generation") or meta["resourceVersion"])
    return result


def test_upgrade_with_the_same_values_changes_nothing(kube: Kube, releases: dict[str, str]) -> None:
    # Before the operator's CRDs arrive: with them, the same values rightly add the monitoring objects.
    namespace = releases["prod"]
    before = _fingerprint(release_objects(kube, namespace))
    proc = kube.helm(
        "upgrade", RELEASE, str(CHART), "-n", namespace, *VALUES["prod"], "--wait", "--timeout", "150s"
    )
    assert proc.returncode == 0, proc.stderr
    after = _fingerprint(release_objects(kube, namespace))
    assert after == before, {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}


def test_with_the_operator_crds_prod_installs_its_monitoring_objects(kube: Kube, operator_crds: None) -> None:
    namespace = "housing-prod-monitoring"
    prepare_namespace(kube, namespace, "prod")
    proc = install(kube, namespace, "prod")
    assert proc.returncode == 0, proc.stderr
    assert kinds(kube, namespace) >= MONITORING_KINDS
    assert kube.get("servicemonitors", "-n", namespace)["items"]
    assert kube.get("prometheusrules", "-n", namespace)["items"]


def test_argocd_path_is_accepted_by_the_server(kube: Kube, operator_crds: None) -> None:
    """What Argo CD applies: its own objects, then each app's namespace and rendered chart, hooks included."""
    kube.ok("apply", "--server-side", "-f", str(CRDS / "argo-cd.yaml"))
    kube.ok(
        "wait", "--for=condition=Established", "crd/applications.argoproj.io", "crd/appprojects.argoproj.io"
    )
    kube.ok("create", "namespace", "argocd")
    kube.ok(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        str(ARGOCD / "project.yaml"),
        "-f",
        str(ARGOCD / "root.yaml"),
        "-f",
        str(ARGOCD / "apps"),
    )
    argocd_docs = [yaml.safe_load(f.read_text()) for f in sorted((ARGOCD / "apps").glob("*.yaml"))]
    # This chart's Applications (the monitoring stack's come from its own Helm repository, not rendered here).
    apps = [
        d["spec"]
        for d in argocd_docs
        if d["kind"] == "Application" and d["spec"]["source"].get("path") == "charts/cali-housing"
    ]
    assert len(apps) == 2, "expected the staging and prod Applications of charts/cali-housing"
    for app in apps:
        namespace = app["destination"]["namespace"]
        labels = app["syncPolicy"]["managedNamespaceMetadata"]["labels"]
        kube.ok(
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
            ),
        )
        values = [arg for f in app["source"]["helm"]["valueFiles"] for arg in ("-f", str(CHART / f))]
        # Argo CD renders with the cluster's version and API groups, as `helm template` does here.
        server = json.loads(kube.ok("version", "-o", "json"))["serverVersion"]["gitVersion"]
        rendered = kube.helm(
            "template",
            app["source"]["helm"]["releaseName"],
            str(CHART),
            "-n",
            namespace,
            *values,
            "--kube-version",
            server,
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
            "--api-versions",
            "monitoring.coreos.com/v1/PrometheusRule",
        )
        assert rendered.returncode == 0, rendered.stderr
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        assert {d["kind"] for d in docs} >= MONITORING_KINDS
        proc = kube.kubectl(
            "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-", stdin=rendered.stdout
        )
        assert proc.returncode == 0, f"{namespace}: {proc.stderr}"
        assert proc.stdout.count("serverside-applied") == len(docs), proc.stdout
