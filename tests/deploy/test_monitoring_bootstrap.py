"""The monitoring bootstrap: what the chart's ServiceMonitor, PrometheusRule, dashboard and the
monitor's pushes need, as Argo CD Applications synced by the root app-of-apps before the app.

No Argo CD controller or internet runs here, so the upstream charts are not rendered: this checks the
contract in the Applications' own terms (their project's scope, pinned chart versions, sync waves
before the app, Prometheus selecting other namespaces' ServiceMonitors and rules, the Pushgateway's
Service name matching prod's monitor.pushgatewayUrl, Grafana's sidecar label matching the chart's
dashboard). Argo CD's CRD schemas validate the files in tests/deploy/test_chart.py. ~0.1 s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import yaml

from .helpers import CHART, REPO, helm_template

APPS = REPO / "argocd" / "apps"
PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts"


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((APPS / name).read_text())
    assert isinstance(doc, dict)
    return doc


def _wave(doc: dict[str, Any]) -> int:
    return int(doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_the_stack_has_its_own_narrow_project_admitted_by_the_root() -> None:
    project = _load("monitoring-project.yaml")
    assert project["spec"]["sourceRepos"] == [PROMETHEUS_COMMUNITY]
    assert [d["namespace"] for d in project["spec"]["destinations"]] == ["monitoring"]
    kinds = {k["kind"] for k in project["spec"]["clusterResourceWhitelist"]}
    assert "CustomResourceDefinition" in kinds and "*" not in kinds
    root_project = yaml.safe_load((REPO / "argocd" / "project.yaml").read_text())
    assert {"group": "argoproj.io", "kind": "AppProject"} in root_project["spec"][
        "namespaceResourceWhitelist"
    ]


def test_pinned_and_ordered_before_the_app() -> None:
    project = _load("monitoring-project.yaml")
    stack = _load("monitoring-kube-prometheus-stack.yaml")
    gateway = _load("monitoring-pushgateway.yaml")
    apps = [_load("cali-housing-staging.yaml"), _load("cali-housing-prod.yaml")]
    for app in (stack, gateway):
        assert app["spec"]["project"] == "monitoring"
        assert app["spec"]["source"]["repoURL"] == PROMETHEUS_COMMUNITY
        assert re.fullmatch(r"\d+\.\d+\.\d+", app["spec"]["source"]["targetRevision"]), app["metadata"][
            "name"
        ]
        assert app["spec"]["destination"]["namespace"] == "monitoring"
        assert _wave(project) < _wave(app) < min(_wave(a) for a in apps)
    assert _wave(stack) < _wave(gateway)  # the ServiceMonitor CRD before the Pushgateway's ServiceMonitor
    assert "ServerSideApply=true" in stack["spec"]["syncPolicy"]["syncOptions"]


def test_prometheus_selects_the_charts_objects_and_grafana_its_dashboard() -> None:
    values = _load("monitoring-kube-prometheus-stack.yaml")["spec"]["source"]["helm"]["valuesObject"]
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {sidecar["label"]: "1"} == chart_values["metrics"]["grafanaDashboard"]["labels"]
    assert sidecar["searchNamespace"] == "ALL"


def test_the_pushgateway_is_where_prod_pushes() -> None:
    gateway = _load("monitoring-pushgateway.yaml")
    prod = yaml.safe_load((CHART / "values-prod.yaml").read_text())
    host = urlparse(prod["monitor"]["pushgatewayUrl"]).hostname
    assert host is not None
    service, namespace = host.split(".")[:2]
    # The upstream chart names its Service after the release when the release contains the chart name.
    assert gateway["spec"]["source"]["helm"]["releaseName"] == service == gateway["spec"]["source"]["chart"]
    assert namespace == gateway["spec"]["destination"]["namespace"]
    monitor = gateway["spec"]["source"]["helm"]["valuesObject"]["serviceMonitor"]
    assert monitor == {"enabled": True, "honorLabels": True}


STAKATER = "https://stakater.github.io/stakater-charts"
EFS_CSI = "https://kubernetes-sigs.github.io/aws-efs-csi-driver"
# What aws-efs-csi-driver 4.4.1 renders with the Application's values (helm template of the chart's
# source, kubernetes-sigs/aws-efs-csi-driver at v4.4.1; not pulled here: no internet), by scope.
EFS_CSI_CLUSTER_KINDS = {
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "CSIDriver"),
}


def test_reloader_rolls_the_deployments_that_read_the_secret(tool: Callable[[str], str]) -> None:
    """Reloader is synced before the app in its own narrow project, with the strategy Argo CD's diff leaves
    alone, and every Deployment that reads the release Secret carries the annotation naming it (the
    CronJobs' and Jobs' pods start afresh each run). Contract only: no controller runs here."""
    project, reloader = _load("platform-project.yaml"), _load("platform-reloader.yaml")
    assert project["spec"]["sourceRepos"] == [STAKATER, EFS_CSI]
    assert reloader["spec"]["destination"]["namespace"] == "reloader"
    assert "reloader" in [d["namespace"] for d in project["spec"]["destinations"]]
    source = reloader["spec"]["source"]
    assert reloader["spec"]["project"] == "platform" and source["repoURL"] == STAKATER
    assert re.fullmatch(r"\d+\.\d+\.\d+", source["targetRevision"])
    assert source["helm"]["valuesObject"]["reloader"]["reloadStrategy"] == "annotations"
    apps = [_load("cali-housing-staging.yaml"), _load("cali-housing-prod.yaml")]
    assert _wave(project) < _wave(reloader) < min(_wave(a) for a in apps)

    for values in ("values-staging.yaml", "values-prod.yaml"):
        proc = helm_template(tool("helm"), ["-f", str(CHART / values)])
        assert proc.returncode == 0, proc.stderr
        secret = yaml.safe_load((CHART / values).read_text())["secrets"]["existingSecret"]
        for doc in (d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"):
            reads = secret in json.dumps(doc["spec"]["template"])
            annotation = doc["metadata"].get("annotations", {}).get("secret.reloader.stakater.com/reload")
            assert annotation == (secret if reads else None), (values, doc["metadata"]["name"])
    off = helm_template(
        tool("helm"), ["-f", str(CHART / "values-prod.yaml"), "--set", "secrets.rollOnChange=false"]
    )
    assert off.returncode == 0 and "reloader.stakater.com" not in off.stdout


def test_the_efs_csi_driver_runs_its_node_daemonset_only_before_the_apps() -> None:
    """The driver that mounts the spool's EFS volumes: pinned, in the platform project, synced before the
    apps, node DaemonSet only (static volumes need no controller), and the project admits exactly the
    cluster-scoped kinds the pinned chart renders. Contract only: no Argo CD, no chart download, no EFS
    here; the rendered kinds were read from the chart's source at the pinned version."""
    project, driver = _load("platform-project.yaml"), _load("platform-efs-csi-driver.yaml")
    spec, source = driver["spec"], driver["spec"]["source"]
    assert spec["project"] == "platform"
    assert source["repoURL"] == EFS_CSI and source["chart"] == "aws-efs-csi-driver"
    assert source["targetRevision"] == "4.4.1", "a new pin: re-read its templates for the whitelist below"
    values = source["helm"]["valuesObject"]
    assert values["controller"] == {"create": False, "serviceAccount": {"create": False}}
    assert values["useHelmHooksForCSIDriver"] is False, "a hook would be deleted and re-made every sync"
    assert "storageClasses" not in values, "the efs-spool class comes from the server's cloud-init"
    assert "hostNetwork" not in json.dumps(values), "the chart's node DaemonSet is hostNetwork (IMDS hop 1)"

    namespace = spec["destination"]["namespace"]
    assert namespace == "efs-csi-driver" and "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    assert [d["namespace"] for d in project["spec"]["destinations"]] == ["reloader", namespace]
    # Reloader's kinds (Namespace, ClusterRole, ClusterRoleBinding) and the driver's: nothing more.
    whitelist = {(k["group"], k["kind"]) for k in project["spec"]["clusterResourceWhitelist"]}
    assert whitelist == {("", "Namespace")} | EFS_CSI_CLUSTER_KINDS
    # Its namespaced objects (ServiceAccount, DaemonSet, RoleBinding) only in the project's namespaces.
    assert project["spec"]["namespaceResourceWhitelist"] == [{"group": "*", "kind": "*"}]

    apps = [_load("cali-housing-staging.yaml"), _load("cali-housing-prod.yaml")]
    assert _wave(project) < _wave(driver) < min(_wave(a) for a in apps)
