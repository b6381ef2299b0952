"""The operator docs stay true to the chart: every alert links to a runbook section that exists, and every
`kubectl` command in README.md and docs/*.md names objects, labels, Secret keys and mount paths that the
chart renders for the namespace the command names (staging and prod as Argo CD installs them: release
`cali-housing` in `cali-housing-staging` and `cali-housing-prod`). Runs `helm template` twice, ~2 s."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import CHART, REPO, find_tool, helm_template

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NAMESPACES = {"cali-housing-staging": "values-staging.yaml", "cali-housing-prod": "values-prod.yaml"}
# Namespaces of other charts (the monitoring stack, Argo CD, Reloader, the EFS CSI driver): their objects are
# not this chart's.
FOREIGN_NAMESPACES = {"monitoring", "argocd", "kube-system", "reloader", "efs-csi-driver"}
KINDS = {
    "deploy": "Deployment",
    "deployment": "Deployment",
    "cronjob": "CronJob",
    "svc": "Service",
    "service": "Service",
    # A Service's Endpoints carry its name.
    "endpoints": "Service",
    "pvc": "PersistentVolumeClaim",
    "persistentvolumeclaim": "PersistentVolumeClaim",
    "hpa": "HorizontalPodAutoscaler",
    "pdb": "PodDisruptionBudget",
    "servicemonitor": "ServiceMonitor",
    "prometheusrule": "PrometheusRule",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "sa": "ServiceAccount",
    "serviceaccount": "ServiceAccount",
    "networkpolicy": "NetworkPolicy",
    "role": "Role",
}
_KIND = "|".join(sorted(KINDS, key=len, reverse=True))
_NAME = r"[a-z0-9][a-z0-9.-]*[a-z0-9]"


def _render(namespace: str, values: str) -> list[dict[str, Any]]:
    proc = helm_template(find_tool("helm"), ["-f", str(CHART / values)], namespace=namespace)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def environments() -> dict[str, list[dict[str, Any]]]:
    return {ns: _render(ns, values) for ns, values in NAMESPACES.items()}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _with_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rendered objects plus the trainer Job the monitor stamps from its ConfigMap."""
    stamped = [
        yaml.safe_load(text)
        for d in docs
        if d["kind"] == "ConfigMap"
        for text in d.get("data", {}).values()
        if "kind: Job" in text
    ]
    return docs + stamped


def _secret_keys(docs: list[dict[str, Any]]) -> set[str]:
    return {n["secretKeyRef"]["key"] for d in _with_templates(docs) for n in _walk(d) if "secretKeyRef" in n}


def _components(docs: list[dict[str, Any]]) -> set[str]:
    return {
        n["labels"]["app.kubernetes.io/component"]
        for d in _with_templates(docs)
        for n in _walk(d)
        if isinstance(n.get("labels"), dict) and "app.kubernetes.io/component" in n["labels"]
    }


def _mount_paths(docs: list[dict[str, Any]], kind: str, name: str) -> set[str]:
    return {
        m["mountPath"]
        for d in docs
        if d["kind"] == kind and d["metadata"]["name"] == name
        for n in _walk(d)
        for m in n.get("volumeMounts", [])
    }


def kubectl_commands() -> list[tuple[str, str]]:
    """(file, command) for every `kubectl …` in the docs, continuation lines joined."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        for match in re.finditer(r"kubectl\s[^`\n]*", text):
            found.append((path.name, re.sub(r"\s+", " ", match.group(0)).strip()))
    return found


def _runbook_anchors() -> set[str]:
    text = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    return {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", text, re.M)
    }


def test_every_alert_links_to_its_runbook_section(environments: dict[str, list[dict[str, Any]]]) -> None:
    base = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]["runbookBaseUrl"]
    anchors = _runbook_anchors()
    alerts: set[str] = set()
    for docs in environments.values():
        for rule in (
            r for d in docs if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"] for r in g["rules"]
        ):
            alerts.add(rule["alert"])
            assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}", rule["alert"]
    assert len(alerts) >= 18
    assert {a.lower() for a in alerts} <= anchors, sorted({a.lower() for a in alerts} - anchors)
    # And no runbook for an alert that no longer exists.
    stale = {a for a in anchors if a.startswith("housing")} - {a.lower() for a in alerts}
    assert not stale, stale


def test_docs_commands_name_what_the_chart_renders(environments: dict[str, list[dict[str, Any]]]) -> None:
    checked = 0
    problems = []
    for source, command in kubectl_commands():
        where = re.search(r"(?:-n|--namespace)[ =](\S+)", command)
        if where is None:
            # Only a namespace itself may be named without one (`kubectl label namespace <ns>`).
            if re.search(rf"\b(?:{_KIND})/\S|\bsecret (?:generic )?{_NAME}", command):
                problems.append(f"{source}: no -n in `{command}`")
            continue
        namespace = where.group(1)
        if "<" in namespace or namespace in FOREIGN_NAMESPACES:
            continue
        if namespace not in environments:
            problems.append(f"{source}: unknown namespace {namespace} in `{command}`")
            continue
        docs = environments[namespace]
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        refs = re.findall(rf"\b({_KIND})/({_NAME})", command)
        refs += re.findall(rf"\b(?:get|describe|edit|top) ({_KIND}) ({_NAME})\b", command)
        for kind, name in refs:
            checked += 1
            if (KINDS[kind], name) not in names:
                problems.append(f"{source}: {KINDS[kind]} {name} is not rendered in {namespace}: `{command}`")
        for component in re.findall(r"app\.kubernetes\.io/component=([a-z-]+)", command):
            checked += 1
            if component not in _components(docs):
                problems.append(f"{source}: no object has component={component} in {namespace}: `{command}`")
        secret = yaml.safe_load((CHART / NAMESPACES[namespace]).read_text())["secrets"]["existingSecret"]
        for name in re.findall(rf"\bsecret (?:generic )?({_NAME})", command):
            checked += 1
            if name != secret:
                problems.append(f"{source}: the Secret is {secret}, not {name}: `{command}`")
        for key in re.findall(r"--from-literal=([A-Z_]+)=|\{\.data\.([A-Z_]+)\}", command):
            checked += 1
            if (key[0] or key[1]) not in _secret_keys(docs):
                problems.append(f"{source}: no pod reads Secret key {key[0] or key[1]}: `{command}`")
        exec_path = re.search(rf"exec (deploy|deployment)/({_NAME}) -- \S+(?: -\w+)* (/\S+)", command)
        if exec_path:
            checked += 1
            kind, name, path = exec_path.groups()
            mounts = _mount_paths(docs, KINDS[kind], name)
            if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
                problems.append(f"{source}: {path} is not mounted in {name} ({sorted(mounts)}): `{command}`")
    assert not problems, "\n".join(problems)
    # The docs name 49 objects, labels, keys and paths today: a parser that finds few is broken.
    assert checked >= 40, checked


def test_the_check_catches_a_wrong_name(environments: dict[str, list[dict[str, Any]]]) -> None:
    """The names the docs use are rendered, and one the chart does not render is not."""
    names = {(d["kind"], d["metadata"]["name"]) for d in environments["cali-housing-prod"]}
    assert ("CronJob", "cali-housing-maintain") in names
    assert ("Deployment", "cali-housing-inference") in names
    assert ("CronJob", "cali-housing-maintenance") not in names
    assert "DATABASE_URL" in _secret_keys(environments["cali-housing-prod"])
    assert "/var/lib/housing/spool" in _mount_paths(
        environments["cali-housing-prod"], "Deployment", "cali-housing-inference"
    )
    assert Path(REPO / "docs" / "runbooks.md").is_file()


def test_docs_name_terraform_outputs_and_addresses_that_exist() -> None:
    """Every `terraform ... output -raw NAME` and `module.M.TYPE.NAME` address in the docs (the node
    replacement steps, day one) is an output of terraform/envs/prod or a resource of the module it names.
    Read from the .tf text: no provider is needed here."""
    env = REPO / "terraform" / "envs" / "prod"
    outputs = set(re.findall(r'^output "(\w+)"', (env / "outputs.tf").read_text(), re.M))
    modules = dict(
        re.findall(r'^module "(\w+)" \{\s*source\s*=\s*"([^"]+)"', (env / "main.tf").read_text(), re.M)
    )
    problems, checked = [], 0
    for path in DOCS:
        text = path.read_text()
        for name in re.findall(r"output -raw (\w+)", text):
            checked += 1
            if name not in outputs:
                problems.append(f"{path.name}: terraform/envs/prod has no output {name}")
        for module, kind, name in re.findall(r"\bmodule\.(\w+)\.(aws_\w+)\.(\w+)", text):
            checked += 1
            folder = (env / modules.get(module, "/missing")).resolve()
            resources = "".join(tf.read_text() for tf in folder.glob("*.tf")) if folder.is_dir() else ""
            if f'resource "{kind}" "{name}"' not in resources:
                problems.append(
                    f"{path.name}: module.{module}.{kind}.{name} is not a resource of {folder.name}"
                )
    assert not problems, "\n".join(problems)
    assert checked >= 5, checked
