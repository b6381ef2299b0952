"""Helpers for the deployment checks: tool lookup, subprocess runs, the rendered-chart record.

The tools come from `bash ci/install-tools.sh` . A missing tool skips the test
locally and fails it in CI (`CI=true`), so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cali-housing"
TOOLS_PATH = [REPO / ".tools" / "bin", REPO / ".tools" / "venv" / "bin"]
# The Kubernetes minor the chart targets: the one ci/cluster builds and the tests install into.
KUBE_VERSION = "1.37.0"
# What a user must set on top of values.yaml (the chart refuses to render without them).
# The public key is a test key's (key id 1ef63f6be24b8886; its private key was not kept).
TEST_PUBLIC_KEY = "kdGJagYvL/sam1woa0LWU6/WZdQ1NTmMwB96zwRhBjQ="
REQUIRED_SETS = [
    "--set",
    "secrets.existingSecret=housing-secrets",
    "--set",
    "image.tag=0123456789abcdef",
    "--set-json",
    f'modelSigning.publicKeys=["{TEST_PUBLIC_KEY}"]',
]
# The chart renders the Prometheus Operator's objects only where their CRDs exist; offline renders
# claim they do, so every check sees them (tests/cluster installs with and without them for real).
OPERATOR_API_VERSIONS = [
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
]


def tool_env() -> dict[str, str]:
    """The environment for tool subprocesses: .tools first on PATH, fully offline settings."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*(str(p) for p in TOOLS_PATH), env.get("PATH", "")])
    env["CKV_SKIP_PACKAGE_UPDATE_CHECK"] = "true"
    env["TF_CLI_CONFIG_FILE"] = ""
    env.setdefault("HELM_CACHE_HOME", str(REPO / ".tools" / "helm-cache"))
    return env


def find_tool(name: str) -> str:
    """Path of a tool on PATH or in .tools; skip (locally) or fail (CI=true) when it is missing."""
    found = shutil.which(name, path=tool_env()["PATH"])
    if found is None:
        missing(f"{name} not found: run `bash ci/install-tools.sh`")
    return found


def missing(message: str) -> NoReturn:
    """A tool or library a test needs is missing: skip on a user's machine, fail under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(
    args: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = 120,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root with the tool environment; never raises on exit codes."""
    return subprocess.run(
        list(args),
        cwd=REPO,
        env={**tool_env(), **(extra_env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Rendered:
    """One `helm template` result: its file and its parsed documents."""

    name: str
    path: Path
    docs: list[dict[str, Any]]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        matches = [d for d in self.kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(matches) == 1, f"{self.name}: expected one {kind} *{name_suffix}, got {len(matches)}"
        return matches[0]


def scenario_args() -> dict[str, list[str]]:
    """Every values scenario the tests render: defaults, the environments, and ci/*-values.yaml."""
    scenarios = {
        "default": REQUIRED_SETS,
        "staging": ["-f", str(CHART / "values-staging.yaml")],
        "prod": ["-f", str(CHART / "values-prod.yaml")],
    }
    for f in sorted((CHART / "ci").glob("*-values.yaml")):
        scenarios[f"ci/{f.name}"] = ["-f", str(f)]
    return scenarios


def helm_template(
    helm: str, extra: Sequence[str], namespace: str = "cali-housing"
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            helm,
            "template",
            "cali-housing",
            str(CHART),
            "-n",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *OPERATOR_API_VERSIONS,
            *extra,
        ]
    )


def helm_notes(helm: str, extra: Sequence[str], namespace: str = "cali-housing") -> str:
    """NOTES.txt as `helm install` prints it (`helm template` does not render NOTES).

    A client-side dry run with a kubeconfig that does not exist: nothing is contacted. Fails the
    test when the chart does not render.
    """
    proc = run(
        [helm, "install", "cali-housing", str(CHART), "-n", namespace, "--dry-run=client", *extra],
        extra_env={"KUBECONFIG": str(REPO / ".no-kubeconfig")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "\nNOTES:\n" in proc.stdout, proc.stdout[-2000:]
    return proc.stdout.split("\nNOTES:\n", 1)[1]
