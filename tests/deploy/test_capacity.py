"""The rendered releases against the machines Terraform provisions: staging and prod together.

- Every claim of both releases lands on the data volume (local-path keeps its folders there), so
  their sum must fit data_volume_size_gb.
- Pods with a claim run on the server (the stable class admits only the node holding the data
  volume); their memory limits at the HPA maximum must fit the server, so that no limit can be
  reached only by taking memory from another pod (the OOM killer picks among them otherwise).
- Pods without a claim (the trainer Jobs, an MLflow server with S3 artifacts) run on the agents:
  their limits fit the group, their requests fit it with one agent lost.
- Prod's pods rank above staging's (PriorityClass), on every pod spec including the trainer Job.

Sizes come from the Terraform variables' defaults and AWS's instance type table in
test_chart_safety.py; the rendered chart is the real helm output. Runtime ~0.1 s after rendering.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .helpers import REPO, Rendered
from .test_chart import pod_spec, trainer_job
from .test_chart_safety import GIB, INSTANCE_TYPES, SYSTEM_RESERVED, quantity

TF = REPO / "terraform"
RELEASES = ("staging", "prod")


def tf_default(path: str, name: str) -> str:
    text = (TF / path).read_text()
    body = re.search(rf'variable "{name}" \{{(.*?)\n\}}', text, re.S)
    assert body, f"{path} declares no {name}"
    default = re.search(r"default\s*=\s*\"?([^\"\n]+)\"?", body.group(1))
    assert default, f"{name} has no default"
    return default.group(1).strip()


def allocatable(instance: str) -> tuple[float, float]:
    assert instance in INSTANCE_TYPES, f"add {instance} to INSTANCE_TYPES"
    vcpu, gib = INSTANCE_TYPES[instance]
    return vcpu - SYSTEM_RESERVED[0], gib * GIB - SYSTEM_RESERVED[1]


def resources(spec: dict[str, Any], kind: str) -> tuple[float, float]:
    containers = spec["containers"]
    cpu = sum(quantity(c["resources"][kind]["cpu"]) for c in containers)
    return cpu, sum(quantity(c["resources"][kind]["memory"]) for c in containers)


def pods(release: Rendered) -> dict[str, tuple[int, dict[str, Any]]]:
    """Every long-running or scheduled pod of a release: name -> (how many at most, pod spec)."""
    hpa = release.one("HorizontalPodAutoscaler", "-inference")
    result = {"inference": (hpa["spec"]["maxReplicas"], pod_spec(release.one("Deployment", "-inference")))}
    result["monitor"] = (1, pod_spec(release.one("CronJob", "-monitor")))
    result["maintenance"] = (1, pod_spec(release.one("CronJob", "-maintain")))
    result["trainer Job"] = (1, pod_spec(trainer_job(release)))
    for d in release.kind("Deployment"):
        if d["metadata"]["name"].endswith("-mlflow"):
            result["MLflow server"] = (1, pod_spec(d))
    return {f"{release.name} {k}": v for k, v in result.items()}


def has_claim(spec: dict[str, Any]) -> bool:
    return any("persistentVolumeClaim" in v for v in spec.get("volumes", []))


def total(parts: dict[str, tuple[int, dict[str, Any]]], kind: str) -> tuple[float, float]:
    sums = [tuple(n * x for x in resources(spec, kind)) for n, spec in parts.values()]
    return sum(s[0] for s in sums), sum(s[1] for s in sums)


@pytest.fixture(scope="module")
def both(rendered: dict[str, Rendered]) -> dict[str, tuple[int, dict[str, Any]]]:
    return {k: v for r in RELEASES for k, v in pods(rendered[r]).items()}


def test_claims_of_staging_and_prod_fit_the_data_volume(rendered: dict[str, Rendered]) -> None:
    size_gib = float(tf_default("modules/k3s-node/variables.tf", "data_volume_size_gb"))
    claims = {
        f"{r} {pvc['metadata']['name']}": quantity(pvc["spec"]["resources"]["requests"]["storage"]) / GIB
        for r in RELEASES
        for pvc in rendered[r].kind("PersistentVolumeClaim")
    }
    assert len(claims) >= 5, claims  # spool and reports in both, MLflow's artifacts in staging
    # 33 GiB on this commit: staging 4 + 12 + 5, prod 4 + 8.
    assert sum(claims.values()) <= size_gib, (
        f"{sum(claims.values())} GiB of claims > {size_gib} GiB: {claims}"
    )


def test_pods_with_a_claim_fit_the_server_at_their_limits(
    both: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    server = {k: v for k, v in both.items() if has_claim(v[1])}
    assert any("inference" in k for k in server) and any("monitor" in k for k in server)
    cpu, memory = allocatable(tf_default("envs/prod/variables.tf", "instance_type"))
    limits = total(server, "limits")
    detail = {k: round(n * resources(s, "limits")[1] / GIB, 2) for k, (n, s) in server.items()}
    assert limits[1] <= memory, f"{limits[1] / GIB:.2f} GiB of limits > {memory / GIB} GiB: {detail}"
    requests = total(server, "requests")
    assert requests[0] <= cpu and requests[1] <= memory


def test_pods_without_a_claim_fit_the_agents_and_survive_losing_one(
    both: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    agents = {k: v for k, v in both.items() if not has_claim(v[1])}
    assert any("trainer Job" in k for k in agents)
    count = int(tf_default("modules/k3s-node/variables.tf", "agent_count"))
    assert int(tf_default("envs/prod/variables.tf", "agent_count")) == count
    cpu, memory = allocatable(tf_default("envs/prod/variables.tf", "agent_instance_type"))
    limits, requests = total(agents, "limits"), total(agents, "requests")
    assert limits[1] <= count * memory, f"{limits[1] / GIB:.2f} GiB > {count} agents"
    # Each pod must fit one agent at its limit, and all of them on count - 1 agents by request.
    for name, (_, spec) in agents.items():
        assert resources(spec, "limits")[1] <= memory, name
    assert requests[0] <= (count - 1) * cpu and requests[1] <= (count - 1) * memory


def test_limits_of_both_releases_no_longer_exceed_what_the_nodes_have(
    both: dict[str, tuple[int, dict[str, Any]]],
) -> None:
    """The sum that once was ~21.5 GiB of limits on one 16 GiB node now has the agents beside it."""
    count = int(tf_default("envs/prod/variables.tf", "agent_count"))
    server = allocatable(tf_default("envs/prod/variables.tf", "instance_type"))[1]
    agent = allocatable(tf_default("envs/prod/variables.tf", "agent_instance_type"))[1]
    limits = total(both, "limits")[1]
    assert limits > server, "the claim-free pods no longer need the agents: revisit agent_count"
    assert limits <= server + count * agent


def test_prod_outranks_staging_on_every_pod(rendered: dict[str, Rendered]) -> None:
    classes = {r: rendered[r].one("PriorityClass", "") for r in RELEASES}
    assert classes["prod"]["value"] > classes["staging"]["value"]
    assert classes["staging"]["preemptionPolicy"] == "Never", "staging never evicts to make room"
    for r in RELEASES:
        name = classes[r]["metadata"]["name"]
        # Cluster-scoped: named after the namespace, so staging's and prod's never collide.
        assert name == "cali-housing", "the namespace the scenarios render into"
        specs = {k: s for k, (_, s) in pods(rendered[r]).items()}
        for k, spec in specs.items():
            assert spec.get("priorityClassName") == name, k
        # Hooks run before the PriorityClass exists on a first sync: naming it would refuse them.
        for job in rendered[r].kind("Job"):
            assert "priorityClassName" not in pod_spec(job), job["metadata"]["name"]
    assert not rendered["default"].kind("PriorityClass")
