"""The rendered releases against the machines Terraform provisions: staging and prod together.

- Every claim of a class on the data volume (local-path-stable, and k3s's default local-path, whose
  folders Terraform puts there too) counts against data_volume_size_gb; a claim of the EFS class
  (the inference spool) does not, and a claim of a class neither the server's cloud-init nor k3s
  defines fails the test (say where it lives first).
- Pods with a data-volume claim run on the server (the stable class admits only the node holding the
  volume); their memory limits at the HPA maximum must fit the server, so that no limit can be
  reached only by taking memory from another pod (the OOM killer picks among them otherwise).
- The other pods (the trainer Jobs, an MLflow server with S3 artifacts, inference with its spool on
  EFS) may run on any node: each fits one agent at its limit, and their requests fit what the server
  leaves plus the agents with one agent lost.
- Prod's pods rank above staging's (PriorityClass), on every pod spec including the trainer Job.

Sizes come from the Terraform variables' defaults and AWS's instance type table in
test_chart_safety.py; the rendered chart is the real helm output. Runtime ~0.1 s after rendering.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import CHART, REPO, Rendered, helm_template
from .test_chart import pod_spec, trainer_job
from .test_chart_safety import GIB, INSTANCE_TYPES, SYSTEM_RESERVED, quantity
from .test_terraform import local_storage_dir, rendered_cloud_init, write_files

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


def storage_classes() -> dict[str, str]:
    """Class -> provisioner, of every class the cluster has: k3s's own and the server's cloud-init's."""
    classes = {"local-path": "rancher.io/local-path"}  # k3s's default class
    for path, content in write_files(rendered_cloud_init()).items():
        if path.startswith("/var/lib/rancher/k3s/server/manifests/"):
            for doc in yaml.safe_load_all(content):
                if doc and doc["kind"] == "StorageClass":
                    classes[doc["metadata"]["name"]] = doc["provisioner"]
    return classes


def data_volume_classes() -> set[str]:
    """Classes whose volumes are folders on the data volume: local-path's, whose storage folder
    (default-local-storage-path) is where cloud-init mounts the volume. "" is the default class."""
    config = yaml.safe_load(write_files(rendered_cloud_init())["/etc/rancher/k3s/config.yaml"])
    assert config["default-local-storage-path"] == local_storage_dir()
    local = {
        name for name, provisioner in storage_classes().items() if provisioner == "rancher.io/local-path"
    }
    return local | {""}


def claim_class(pvc: dict[str, Any]) -> str:
    name = pvc["spec"].get("storageClassName") or ""
    assert name == "" or name in storage_classes(), (
        f"{pvc['metadata']['name']}: no class {name!r} in the cluster"
    )
    return str(name)


def data_volume_claims(release: Rendered) -> set[str]:
    return {
        pvc["metadata"]["name"]
        for pvc in release.kind("PersistentVolumeClaim")
        if claim_class(pvc) in data_volume_classes()
    }


def has_claim(spec: dict[str, Any], claims: set[str]) -> bool:
    """The pod mounts a claim of the data volume (so it runs on the server)."""
    return any(v.get("persistentVolumeClaim", {}).get("claimName") in claims for v in spec.get("volumes", []))


def total(parts: dict[str, tuple[int, dict[str, Any]]], kind: str) -> tuple[float, float]:
    sums = [tuple(n * x for x in resources(spec, kind)) for n, spec in parts.values()]
    return sum(s[0] for s in sums), sum(s[1] for s in sums)


@pytest.fixture(scope="module")
def both(rendered: dict[str, Rendered]) -> dict[str, tuple[int, dict[str, Any]]]:
    return {k: v for r in RELEASES for k, v in pods(rendered[r]).items()}


@pytest.fixture(scope="module")
def on_server(rendered: dict[str, Rendered], both: dict[str, tuple[int, dict[str, Any]]]) -> set[str]:
    """The pods of both releases that mount a claim of the data volume."""
    claims = {r: data_volume_claims(rendered[r]) for r in RELEASES}
    return {k for k, (_, spec) in both.items() if has_claim(spec, claims[k.split()[0]])}


def data_volume_gib(releases: dict[str, Rendered]) -> dict[str, float]:
    """Every claim of staging and prod on the data volume -> its size in GiB."""
    classes = data_volume_classes()
    return {
        f"{r} {pvc['metadata']['name']}": quantity(pvc["spec"]["resources"]["requests"]["storage"]) / GIB
        for r in RELEASES
        for pvc in releases[r].kind("PersistentVolumeClaim")
        if claim_class(pvc) in classes
    }


def test_claims_of_staging_and_prod_fit_the_data_volume(rendered: dict[str, Rendered]) -> None:
    size_gib = float(tf_default("modules/k3s-node/variables.tf", "data_volume_size_gb"))
    claims = data_volume_gib(rendered)
    assert len(claims) >= 5, (
        claims
    )  # reports and MLflow's upgrade backups in both, MLflow's artifacts in staging
    # 29 GiB on this commit: staging 12 + 5 + 2, prod 8 + 2 (the spools are on EFS).
    assert sum(claims.values()) <= size_gib, (
        f"{sum(claims.values())} GiB of claims > {size_gib} GiB: {claims}"
    )


def test_the_spool_claims_are_on_efs_not_on_the_data_volume(rendered: dict[str, Rendered]) -> None:
    for r in RELEASES:
        spool = rendered[r].one("PersistentVolumeClaim", "-inference-spool")
        assert storage_classes()[claim_class(spool)] == "efs.csi.aws.com", r
        assert spool["metadata"]["name"] not in data_volume_claims(rendered[r]), r


def test_a_claim_on_the_data_volume_that_does_not_fit_is_counted(
    tool: Callable[[str], str], rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    """The sum skips the EFS claims, not the others: prod's reports at 20 GiB take it past 40 GiB."""
    proc = helm_template(
        tool("helm"),
        ["-f", str(CHART / "values-prod.yaml"), "--set", "monitor.reports.persistence.size=20Gi"],
    )
    assert proc.returncode == 0, proc.stderr
    grown = Rendered("prod", tmp_path / "prod.yaml", [d for d in yaml.safe_load_all(proc.stdout) if d])
    claims = data_volume_gib({**rendered, "prod": grown})
    assert claims["prod cali-housing-monitor-reports"] == 20
    assert sum(claims.values()) > float(tf_default("modules/k3s-node/variables.tf", "data_volume_size_gb"))


def test_pods_with_a_claim_fit_the_server_at_their_limits(
    both: dict[str, tuple[int, dict[str, Any]]], on_server: set[str]
) -> None:
    server = {k: v for k, v in both.items() if k in on_server}
    assert any("monitor" in k for k in server)
    assert not any("inference" in k for k in server), "the spool is on EFS: inference may run anywhere"
    cpu, memory = allocatable(tf_default("envs/prod/variables.tf", "instance_type"))
    limits = total(server, "limits")
    detail = {k: round(n * resources(s, "limits")[1] / GIB, 2) for k, (n, s) in server.items()}
    assert limits[1] <= memory, f"{limits[1] / GIB:.2f} GiB of limits > {memory / GIB} GiB: {detail}"
    requests = total(server, "requests")
    assert requests[0] <= cpu and requests[1] <= memory


def test_pods_without_a_claim_fit_the_nodes_and_survive_losing_an_agent(
    both: dict[str, tuple[int, dict[str, Any]]], on_server: set[str]
) -> None:
    free = {k: v for k, v in both.items() if k not in on_server}
    assert any("trainer Job" in k for k in free) and any("inference" in k for k in free)
    count = int(tf_default("modules/k3s-node/variables.tf", "agent_count"))
    assert int(tf_default("envs/prod/variables.tf", "agent_count")) == count
    cpu, memory = allocatable(tf_default("envs/prod/variables.tf", "agent_instance_type"))
    # Each pod must fit one agent at its limit.
    for name, (_, spec) in free.items():
        assert resources(spec, "limits")[1] <= memory, name
    # By request, all of them fit what the server's own pods leave plus count - 1 agents.
    server_cpu, server_memory = allocatable(tf_default("envs/prod/variables.tf", "instance_type"))
    pinned = total({k: v for k, v in both.items() if k in on_server}, "requests")
    requests = total(free, "requests")
    room = ((count - 1) * cpu + server_cpu - pinned[0], (count - 1) * memory + server_memory - pinned[1])
    assert requests[0] <= room[0], f"{requests[0]} CPU > {room[0]} with an agent lost"
    assert requests[1] <= room[1], f"{requests[1] / GIB:.2f} GiB > {room[1] / GIB:.2f} GiB with an agent lost"


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
