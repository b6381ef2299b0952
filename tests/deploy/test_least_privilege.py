"""Each secret only where it is used, egress with no way out, a namespace ceiling: on rendered objects.

NetworkPolicy enforcement needs a CNI that enforces it (Calico, Cilium, k3s's kube-router); the
control plane of tests/cluster has none, so these tests check the rendered peers and ports, and
tests/cluster only that the API server admits the objects (and the quota, with the release inside it).
~5 s.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest

from .helpers import CHART, REQUIRED_SETS, Rendered, helm_template

PROD = ["-f", str(CHART / "values-prod.yaml")]
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
AWS_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
UNITS = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: str | int | float) -> float:
    text = str(value)
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kind = doc["kind"]
    if kind == "Pod":
        return [doc["spec"]]
    if kind == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if kind in {"Deployment", "StatefulSet", "Job"}:
        return [doc["spec"]["template"]["spec"]]
    return []


def env_names(r: Rendered) -> dict[str, set[str]]:
    """Workload name -> the env names of its containers (the trainer Job template included)."""
    found: dict[str, set[str]] = {}
    docs = [*r.docs, trainer_job(r)]
    for doc in docs:
        for spec in pod_specs(doc):
            names = {e["name"] for c in spec.get("containers", []) for e in c.get("env", [])}
            found[doc["metadata"].get("name") or doc["metadata"]["generateName"]] = names
    return found


def trainer_job(r: Rendered) -> dict[str, Any]:
    import yaml

    job: dict[str, Any] = yaml.safe_load(r.one("ConfigMap", "-trainer-job")["data"]["trainer-job.yaml"])
    return job


def busiest(r: Rendered) -> dict[str, float]:
    """What the release runs at its busiest, summed: every pod that can exist at once.

    Deployments at their HPA maximum plus the rolling update's surge; one run of each CronJob
    (concurrencyPolicy Forbid); the migration hook; one trainer Job; the helm test pod.
    """
    hpa_max = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"]["maxReplicas"]
        for d in r.kind("HorizontalPodAutoscaler")
    }
    totals = dict.fromkeys(("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods"), 0.0)
    for doc in [*r.docs, trainer_job(r)]:
        specs = pod_specs(doc)
        if not specs:
            continue
        copies = 1
        if doc["kind"] == "Deployment":
            copies = hpa_max.get(doc["metadata"]["name"], doc["spec"].get("replicas", 1))
            strategy = doc["spec"].get("strategy", {})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                copies += int(strategy.get("rollingUpdate", {}).get("maxSurge", 1))
        if doc["kind"] == "CronJob":
            assert doc["spec"]["concurrencyPolicy"] == "Forbid", doc["metadata"]["name"]
        if doc["kind"] == "Job":
            assert doc["spec"].get("parallelism", 1) == 1
        for spec in specs:
            totals["pods"] += copies
            for c in [*spec["containers"], *spec.get("initContainers", [])]:
                for kind in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        value = c.get("resources", {}).get(kind, {}).get(resource)
                        assert value is not None, (r.name, doc["metadata"], c["name"], kind, resource)
                        totals[f"{kind}.{resource}"] += copies * quantity(value)
    return totals


def with_quota(rendered: dict[str, Rendered]) -> list[Rendered]:
    return [r for r in rendered.values() if r.kind("ResourceQuota")]


def test_the_release_at_its_busiest_fits_its_quota(rendered: dict[str, Rendered]) -> None:
    assert {"default", "staging", "prod"} <= {r.name for r in with_quota(rendered)}
    for r in with_quota(rendered):
        hard = r.one("ResourceQuota", "-quota")["spec"]["hard"]
        for resource, used in busiest(r).items():
            assert used <= quantity(hard[resource]), (r.name, resource, used, hard[resource])
        # Jobs are counted: the CronJobs' kept history, one running each, the migration, a trainer.
        kept = sum(
            d["spec"]["successfulJobsHistoryLimit"] + d["spec"]["failedJobsHistoryLimit"] + 1
            for d in r.kind("CronJob")
        )
        assert kept + 2 <= int(hard["count/jobs.batch"]), r.name


def test_the_quota_refuses_what_the_admission_review_found(rendered: dict[str, Rendered]) -> None:
    # The attacks the trainer policy refuses are refused here too, by the namespace's ceiling.
    r = rendered["prod"]
    hard = r.one("ResourceQuota", "-quota")["spec"]["hard"]
    assert quantity(hard["requests.cpu"]) < 64 and quantity(hard["requests.memory"]) < quantity("512Gi")
    assert int(hard["pods"]) < 1000
    (limits,) = r.one("LimitRange", "-limits")["spec"]["limits"]
    assert limits["type"] == "Container"
    largest = max(
        quantity(c["resources"]["limits"]["memory"])
        for doc in [*r.docs, trainer_job(r)]
        for spec in pod_specs(doc)
        for c in spec["containers"]
    )
    assert largest <= quantity(limits["max"]["memory"]) < quantity("512Gi")


def test_cloud_keys_are_only_in_the_mlflow_server(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        if not r.kind("Deployment") or not any(
            d["metadata"]["name"].endswith("-mlflow") for d in r.kind("Deployment")
        ):
            continue  # a hosted registry: the services may open s3:// URIs themselves
        holders = {name for name, names in env_names(r).items() if names & AWS_KEYS}
        assert holders <= {n for n in holders if n.endswith("-mlflow")}, (r.name, holders)


def test_dns_goes_to_the_cluster_dns_pods_only(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for np in r.kind("NetworkPolicy"):
            for rule in np["spec"].get("egress", []):
                assert rule.get("to"), (
                    r.name,
                    np["metadata"]["name"],
                    "a rule without peers reaches any address",
                )
                if {p["port"] for p in rule["ports"]} == {53}:
                    assert rule["to"] == [KUBE_DNS], (r.name, np["metadata"]["name"])


def test_prod_names_its_database_api_server_and_callers(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    monitor = r.one("NetworkPolicy", "-monitor-egress")["spec"]["egress"]
    for rule in monitor:
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            ports = {p["port"] for p in rule["ports"]}
            if block and ports & {5432, 6543, 6443}:
                assert ipaddress.ip_network(block["cidr"]).prefixlen >= 16, (ports, block)
            if block and ipaddress.ip_network(block["cidr"]).prefixlen == 0:
                assert ports == {443}, "only the alert endpoints and hosted services are anywhere, on 443"
    ingress = r.one("NetworkPolicy", "-inference")["spec"]["ingress"][0]["from"]
    assert all(p.get("namespaceSelector") or p.get("podSelector") for p in ingress)
    assert {"kubernetes.io/metadata.name": "kube-system"} in [
        p.get("namespaceSelector", {}).get("matchLabels") for p in ingress
    ]


def test_only_the_monitor_reaches_the_internet_on_443(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for np in r.kind("NetworkPolicy"):
            for rule in np["spec"].get("egress", []):
                anywhere = any(
                    ipaddress.ip_network(p["ipBlock"]["cidr"]).prefixlen == 0
                    for p in rule["to"]
                    if "ipBlock" in p
                )
                if anywhere:
                    assert [p["port"] for p in rule["ports"]] != [] and {
                        p["port"] for p in rule["ports"]
                    } <= {
                        443,
                        5432,
                        6543,
                    }, (r.name, np["metadata"]["name"], rule)
        if r.name == "prod":
            opened = [
                json.dumps(np["metadata"]["name"])
                for np in r.kind("NetworkPolicy")
                for rule in np["spec"].get("egress", [])
                if any("ipBlock" in p and p["ipBlock"]["cidr"] == "0.0.0.0/0" for p in rule["to"])
            ]
            # The monitor's alert webhooks and the MLflow server's object store (S3), both on 443.
            assert sorted(opened) == ['"cali-housing-mlflow-egress"', '"cali-housing-monitor-egress"'], opened


@pytest.mark.parametrize(
    ("override", "says"),
    [
        (
            ["--set-json", 'networkPolicy.egress.database.to=[{"ipBlock":{"cidr":"0.0.0.0/0"}}]'],
            "networkPolicy.egress.database.to admits 0.0.0.0/0",
        ),
        (
            ["--set-json", "networkPolicy.egress.database.to=[]"],
            "/networkPolicy/egress/database/to': minItems",
        ),
        (
            ["--set-json", 'networkPolicy.egress.kubernetesApi.to=[{"ipBlock":{"cidr":"0.0.0.0/0"}}]'],
            "kubectl get endpoints kubernetes",
        ),
        (
            ["--set-json", "networkPolicy.inferenceIngressFrom=[]"],
            "networkPolicy.inferenceIngressFrom is empty",
        ),
        (["--set-json", "networkPolicy.egress.dns.to=[]"], "/networkPolicy/egress/dns/to': minItems"),
    ],
)
def test_prod_refuses_to_render_open_peers(
    tool: Callable[[str], str], override: list[str], says: str
) -> None:
    proc = helm_template(tool("helm"), [*PROD, *override])
    assert proc.returncode != 0
    assert says in proc.stderr, proc.stderr


def test_outside_prod_the_defaults_still_render_and_the_check_can_be_asked_for(
    tool: Callable[[str], str],
) -> None:
    assert helm_template(tool("helm"), REQUIRED_SETS).returncode == 0
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, "--set", "networkPolicy.requireNamedPeers=true"])
    assert proc.returncode != 0 and "networkPolicy.egress.database.to admits 0.0.0.0/0" in proc.stderr
