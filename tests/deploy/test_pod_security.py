"""Pod Security Standards: every pod the chart can run passes the "restricted" profile.

The staging and prod namespaces enforce `restricted` (argocd/apps: managedNamespaceMetadata), so a pod
that breaks it would be refused by the API server at sync or at the monitor's Job creation.
tests/cluster installs the dev and prod values into namespaces that enforce it, on a real API server;
these offline checks cover every values scenario and name the control that fails. PyPI has no
well-kept evaluator of the standards (one unmaintained auditor with its own rule set), so the controls
are written out below, one function per control, after the
Kubernetes "Pod Security Standards" page (kubernetes.io/docs/concepts/security/pod-security-standards,
policy version v1.37): the Baseline controls, then the Restricted ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from .helpers import REPO, Rendered

PodSpec = dict[str, Any]
Metadata = dict[str, Any]
Control = Callable[[Metadata, PodSpec], list[str]]

PSA_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUME_SOURCES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def containers(spec: PodSpec) -> list[dict[str, Any]]:
    """Every container the controls apply to: regular, init and ephemeral."""
    return [
        *spec.get("containers", []),
        *spec.get("initContainers", []),
        *spec.get("ephemeralContainers", []),
    ]


def sc(obj: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = obj.get("securityContext") or {}
    return context


def security_contexts(spec: PodSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod's security context and each container's, named for messages."""
    yield "pod", sc(spec)
    for c in containers(spec):
        yield f"container {c['name']}", sc(c)


# --- Baseline


def host_process(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"{where} sets windowsOptions.hostProcess"
        for where, ctx in security_contexts(spec)
        if (ctx.get("windowsOptions") or {}).get("hostProcess")
    ]


def host_namespaces(_: Metadata, spec: PodSpec) -> list[str]:
    return [f"{field} is true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]


def privileged_containers(_: Metadata, spec: PodSpec) -> list[str]:
    return [f"container {c['name']} is privileged" for c in containers(spec) if sc(c).get("privileged")]


def baseline_capabilities(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"container {c['name']} adds {cap}"
        for c in containers(spec)
        for cap in (sc(c).get("capabilities") or {}).get("add") or []
        if cap not in BASELINE_CAPABILITIES
    ]


def host_path_volumes(_: Metadata, spec: PodSpec) -> list[str]:
    return [f"volume {v['name']} is a hostPath" for v in spec.get("volumes") or [] if "hostPath" in v]


def host_ports(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"container {c['name']} uses hostPort {p['hostPort']}"
        for c in containers(spec)
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]


def apparmor(metadata: Metadata, spec: PodSpec) -> list[str]:
    found = [
        f"{where} sets appArmorProfile {ctx['appArmorProfile'].get('type')}"
        for where, ctx in security_contexts(spec)
        if "appArmorProfile" in ctx
        and ctx["appArmorProfile"].get("type") not in {"RuntimeDefault", "Localhost"}
    ]
    for key, value in (metadata.get("annotations") or {}).items():
        if (
            key.startswith(APPARMOR_ANNOTATION)
            and value != "runtime/default"
            and not value.startswith("localhost/")
        ):
            found.append(f"annotation {key}={value}")
    return found


def selinux(_: Metadata, spec: PodSpec) -> list[str]:
    found = []
    for where, ctx in security_contexts(spec):
        options = ctx.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES:
            found.append(f"{where} sets SELinux type {options['type']}")
        found += [f"{where} sets SELinux {key}" for key in ("user", "role") if options.get(key)]
    return found


def proc_mount(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"container {c['name']} sets procMount {sc(c)['procMount']}"
        for c in containers(spec)
        if sc(c).get("procMount", "Default") != "Default"
    ]


def baseline_seccomp(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"{where} sets seccompProfile Unconfined"
        for where, ctx in security_contexts(spec)
        if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined"
    ]


def sysctls(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"unsafe sysctl {s['name']}" for s in sc(spec).get("sysctls") or [] if s["name"] not in SAFE_SYSCTLS
    ]


# --- Restricted


def volume_types(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"volume {v['name']} is a {kind}"
        for v in spec.get("volumes") or []
        for kind in set(v) - {"name"}
        if kind not in RESTRICTED_VOLUME_SOURCES
    ]


def privilege_escalation(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"container {c['name']} does not set allowPrivilegeEscalation false"
        for c in containers(spec)
        if sc(c).get("allowPrivilegeEscalation") is not False
    ]


def run_as_non_root(_: Metadata, spec: PodSpec) -> list[str]:
    pod_level = sc(spec).get("runAsNonRoot")
    found = [
        f"container {c['name']} sets runAsNonRoot false"
        for c in containers(spec)
        if sc(c).get("runAsNonRoot") is False
    ]
    if pod_level is False:
        found.append("pod sets runAsNonRoot false")
    elif pod_level is not True:
        found += [
            f"container {c['name']} does not set runAsNonRoot true (nor does the pod)"
            for c in containers(spec)
            if sc(c).get("runAsNonRoot") is not True
        ]
    return found


def run_as_non_root_user(_: Metadata, spec: PodSpec) -> list[str]:
    return [
        f"{where} sets runAsUser 0" for where, ctx in security_contexts(spec) if ctx.get("runAsUser") == 0
    ]


def restricted_seccomp(_: Metadata, spec: PodSpec) -> list[str]:
    allowed = {"RuntimeDefault", "Localhost"}
    if (sc(spec).get("seccompProfile") or {}).get("type") in allowed:
        return []  # the pod's profile covers containers that set none; Unconfined is baseline's
    return [
        f"container {c['name']} has no RuntimeDefault/Localhost seccompProfile (nor does the pod)"
        for c in containers(spec)
        if (sc(c).get("seccompProfile") or {}).get("type") not in allowed
    ]


def restricted_capabilities(_: Metadata, spec: PodSpec) -> list[str]:
    found = []
    for c in containers(spec):
        capabilities = sc(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"container {c['name']} does not drop ALL capabilities")
        found += [
            f"container {c['name']} adds {cap}"
            for cap in capabilities.get("add") or []
            if cap != "NET_BIND_SERVICE"
        ]
    return found


CONTROLS: dict[str, Control] = {
    "HostProcess": host_process,
    "Host Namespaces": host_namespaces,
    "Privileged Containers": privileged_containers,
    "Capabilities (baseline)": baseline_capabilities,
    "HostPath Volumes": host_path_volumes,
    "Host Ports": host_ports,
    "AppArmor": apparmor,
    "SELinux": selinux,
    "/proc Mount Type": proc_mount,
    "Seccomp (baseline)": baseline_seccomp,
    "Sysctls": sysctls,
    "Volume Types": volume_types,
    "Privilege Escalation": privilege_escalation,
    "Running as Non-root": run_as_non_root,
    "Running as Non-root user": run_as_non_root_user,
    "Seccomp (restricted)": restricted_seccomp,
    "Capabilities (restricted)": restricted_capabilities,
}


def restricted_violations(metadata: Metadata, spec: PodSpec) -> dict[str, list[str]]:
    """Every control the pod breaks, with what breaks it; empty when the pod is `restricted`."""
    found = {name: control(metadata, spec) for name, control in CONTROLS.items()}
    return {name: problems for name, problems in found.items() if problems}


def pod_template(doc: dict[str, Any]) -> tuple[Metadata, PodSpec] | None:
    """(metadata, spec) of the pod a workload runs, None for kinds that run none."""
    kind, spec = doc["kind"], doc.get("spec") or {}
    if kind == "Pod":
        return doc.get("metadata") or {}, spec
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    if isinstance(template, dict) and "spec" in template:
        return template.get("metadata") or {}, template["spec"]
    return None


def pods(r: Rendered) -> Iterator[tuple[str, Metadata, PodSpec]]:
    """Every pod the release can run: each workload, and the trainer Job template in the ConfigMap."""
    for doc in r.docs:
        found = pod_template(doc)
        if found:
            yield f"{doc['kind']}/{doc['metadata']['name']}", *found
    trainer = yaml.safe_load(r.one("ConfigMap", "-trainer-job")["data"]["trainer-job.yaml"])
    found = pod_template(trainer)
    assert found, "the trainer Job template has no pod template"
    yield "trainer-job.yaml", *found


def test_every_chart_pod_is_restricted(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for name, metadata, spec in pods(r):
            assert restricted_violations(metadata, spec) == {}, (r.name, name)


def mlflow_upgrade_job(r: Rendered) -> str:
    """The MLflow upgrade Job's name: it carries a digest of the MLflow image."""
    (name,) = [
        d["metadata"]["name"]
        for d in r.kind("Job")
        if d["metadata"]["name"].startswith("cali-housing-mlflow-upgrade-")
    ]
    return name


def test_the_check_covers_every_pod_of_the_full_scenario(rendered: dict[str, Rendered]) -> None:
    names = {name for name, _, _ in pods(rendered["prod"])}
    assert names == {
        "Deployment/cali-housing-inference",
        "Deployment/cali-housing-mlflow",
        "Job/cali-housing-mlflow-users",
        "CronJob/cali-housing-monitor",
        "CronJob/cali-housing-maintain",
        "Job/cali-housing-migrate",
        f"Job/{mlflow_upgrade_job(rendered['prod'])}",
        "Pod/cali-housing-test-readyz",
        "trainer-job.yaml",
    }


GOOD_POD: PodSpec = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "example/app:1",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


def _container_sc(spec: PodSpec) -> dict[str, Any]:
    context: dict[str, Any] = spec["containers"][0]["securityContext"]
    return context


BAD_PODS: dict[str, tuple[Callable[[PodSpec], Any], str]] = {
    "privileged": (lambda s: _container_sc(s).update(privileged=True), "Privileged Containers"),
    "host-network": (lambda s: s.update(hostNetwork=True), "Host Namespaces"),
    "host-pid": (lambda s: s.update(hostPID=True), "Host Namespaces"),
    "host-path": (
        lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "HostPath Volumes",
    ),
    "nfs-volume": (
        lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "Volume Types",
    ),
    "host-port": (
        lambda s: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "Host Ports",
    ),
    "sys-admin": (
        lambda s: _container_sc(s).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
        "Capabilities (baseline)",
    ),
    "chown-added": (
        lambda s: _container_sc(s).update(capabilities={"drop": ["ALL"], "add": ["CHOWN"]}),
        "Capabilities (restricted)",
    ),
    "no-drop-all": (lambda s: _container_sc(s).pop("capabilities"), "Capabilities (restricted)"),
    "escalation": (lambda s: _container_sc(s).update(allowPrivilegeEscalation=True), "Privilege Escalation"),
    "non-root-unset": (lambda s: s["securityContext"].pop("runAsNonRoot"), "Running as Non-root"),
    "container-root-allowed": (lambda s: _container_sc(s).update(runAsNonRoot=False), "Running as Non-root"),
    "uid-0": (lambda s: s["securityContext"].update(runAsUser=0), "Running as Non-root user"),
    "seccomp-unset": (lambda s: s["securityContext"].pop("seccompProfile"), "Seccomp (restricted)"),
    "seccomp-unconfined": (
        lambda s: _container_sc(s).update(seccompProfile={"type": "Unconfined"}),
        "Seccomp (baseline)",
    ),
    "unsafe-sysctl": (
        lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "Sysctls",
    ),
    "selinux-type": (lambda s: _container_sc(s).update(seLinuxOptions={"type": "spc_t"}), "SELinux"),
    "apparmor-unconfined": (
        lambda s: _container_sc(s).update(appArmorProfile={"type": "Unconfined"}),
        "AppArmor",
    ),
    "proc-unmasked": (lambda s: _container_sc(s).update(procMount="Unmasked"), "/proc Mount Type"),
    "host-process": (
        lambda s: s["securityContext"].update(windowsOptions={"hostProcess": True}),
        "HostProcess",
    ),
    "bad-init-container": (
        lambda s: s.update(
            initContainers=[{"name": "init", "image": "x", "securityContext": {"privileged": True}}]
        ),
        "Privileged Containers",
    ),
}


def test_the_checker_passes_a_good_pod() -> None:
    assert restricted_violations({}, copy.deepcopy(GOOD_POD)) == {}


@pytest.mark.parametrize("case", sorted(BAD_PODS))
def test_the_checker_refuses_a_bad_pod(case: str) -> None:
    mutate, control = BAD_PODS[case]
    spec = copy.deepcopy(GOOD_POD)
    mutate(spec)
    assert control in restricted_violations({}, spec), case


def test_the_checker_reads_the_apparmor_annotation() -> None:
    metadata = {"annotations": {f"{APPARMOR_ANNOTATION}app": "unconfined"}}
    assert "AppArmor" in restricted_violations(metadata, copy.deepcopy(GOOD_POD))
    metadata = {"annotations": {f"{APPARMOR_ANNOTATION}app": "runtime/default"}}
    assert restricted_violations(metadata, copy.deepcopy(GOOD_POD)) == {}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_argocd_namespaces_enforce_restricted(env: str) -> None:
    app = yaml.safe_load((REPO / "argocd" / "apps" / f"cali-housing-{env}.yaml").read_text())
    sync = app["spec"]["syncPolicy"]
    # Argo CD applies managedNamespaceMetadata only to the namespace it creates.
    assert "CreateNamespace=true" in sync["syncOptions"]
    labels = sync["managedNamespaceMetadata"]["labels"]
    assert PSA_LABELS.items() <= labels.items(), labels
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}-version"].startswith("v1."), mode
