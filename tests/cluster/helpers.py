"""Talking to the local cluster from the tests: kubectl and helm with a kubeconfig, tokens, releases.

The cluster itself is :mod:`services.local.cluster` (the same code as ``housing cluster up``); the
binaries are the ones ``make tools`` builds into ``.tools/bin``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.local.cluster import Layout
from services.local.cluster_pki import write_token_kubeconfig
from tests.deploy.helpers import CHART, REPO, REQUIRED_SETS, tool_env
from tests.deploy.test_terraform_resilience import spool_manifests

TOOLS = REPO / ".tools" / "bin"
ARGOCD = REPO / "argocd"
CRDS = Path(__file__).resolve().parent / "crds"
SECRET_KEYS = ("DATABASE_URL", "FEEDBACK_TOKEN", "MLFLOW_BACKEND_STORE_URI", "MODEL_SIGNING_KEY")
# A private key no values file trusts: no container runs in these clusters, the key only has to be there.
TEST_SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()
# The Secret's values as an operator would set them: in-cluster addresses that tests/cluster/
# test_monitor_launch.py swaps for the test's own Postgres.
IN_CLUSTER_DATABASE_URL = "postgresql://housing:secret@postgres.databases.svc.cluster.local:5432/housing"
# The values files a person installs: defaults plus what they must set, and prod.
VALUES = {"dev": REQUIRED_SETS, "prod": ["-f", str(CHART / "values-prod.yaml")]}
RELEASE = "cali-housing"


@dataclass(frozen=True)
class Kube:
    """kubectl and helm against one cluster, as the identity of ``kubeconfig``."""

    kubeconfig: Path
    layout: Layout

    def run(
        self, args: Sequence[str], *, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **tool_env(),
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.layout.home / "helm-cache"),
        }
        env["HELM_CONFIG_HOME"] = str(self.layout.home / "helm-config")
        env["HELM_DATA_HOME"] = str(self.layout.home / "helm-data")
        env["KUBECACHEDIR"] = str(self.layout.home / "kube-cache")  # discovery: never a stale shared one
        return subprocess.run(
            list(args),
            cwd=REPO,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run([str(TOOLS / "kubectl"), *args], stdin=stdin, timeout=timeout)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """kubectl ARGS; fails the test with kubectl's stderr when it fails."""
        proc = self.kubectl(*args, stdin=stdin, timeout=timeout)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.ok("get", *args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.run([str(TOOLS / "helm"), *args], timeout=timeout)

    def token(self, service_account: str, namespace: str) -> str:
        """A token the API issues to the ServiceAccount (TokenRequest), as a pod gets one."""
        return self.ok("create", "token", service_account, "-n", namespace, "--duration=1h").strip()

    def as_service_account(self, service_account: str, namespace: str) -> Kube:
        """The same cluster as the ServiceAccount, with a TokenRequest token (no admin credentials)."""
        path = self.layout.home / f"sa-{namespace}-{service_account}.kubeconfig"
        server = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        write_token_kubeconfig(path, server, self.layout.pki.ca, self.token(service_account, namespace))
        return Kube(path, self.layout)

    def whoami(self) -> str:
        """The username the API server sees (SelfSubjectReview): never read a 403 as a policy's without it.

        Some clients drop a token silently (the Python kubernetes client 36.0.0 and 36.0.1 ignore
        ``api_key["authorization"]`` and ask as anonymous; 36.0.2 fixed it).
        """
        review = json.loads(self.ok("auth", "whoami", "-o", "json"))
        return str(review["status"]["userInfo"]["username"])


def namespace_labels() -> dict[str, str]:
    """The labels Argo CD gives the prod namespace (Pod Security restricted, pinned)."""
    app = yaml.safe_load((ARGOCD / "apps" / "cali-housing-prod.yaml").read_text())
    labels: dict[str, str] = app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"]
    return labels


def values_secret_name(values: str) -> str:
    """The Secret the values file names (secrets.existingSecret)."""
    if values == "dev":
        return REQUIRED_SETS[REQUIRED_SETS.index("--set") + 1].split("=", 1)[1]
    name: str = yaml.safe_load((CHART / "values-prod.yaml").read_text())["secrets"]["existingSecret"]
    return name


def spool_storage(namespace: str) -> list[dict[str, Any]]:
    """What prod's spool claim binds to on the k3s server, for a release in ``namespace``: the server's
    cloud-init's efs-spool class and prod's PersistentVolume (its claimRef moved to ``namespace``, its
    name after it), with the CSIDriver object the EFS driver's chart registers (attachRequired false).
    No EFS and no driver here: kwok starts no container, so nothing mounts; what is real is the binding
    and the scheduling."""
    docs = spool_manifests()
    (volume,) = [
        d
        for d in docs
        if d["kind"] == "PersistentVolume" and d["spec"]["claimRef"]["namespace"] == "cali-housing-prod"
    ]
    volume["metadata"]["name"] = f"{namespace}-inference-spool"
    volume["spec"]["claimRef"]["namespace"] = namespace
    (storage_class,) = [d for d in docs if d["kind"] == "StorageClass"]
    driver = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": storage_class["provisioner"]},
        "spec": {"attachRequired": False},
    }
    return [driver, storage_class, volume]


def prepare_namespace(kube: Kube, namespace: str, values: str) -> None:
    """An empty namespace as Argo CD makes it (labels), with the Secret the release expects (and, for
    the prod values, the EFS spool volume that Terraform's cloud-init gives prod on the k3s server)."""
    labels = {f"{k}": v for k, v in namespace_labels().items()}
    namespace_doc = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": labels},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": values_secret_name(values), "namespace": namespace},
        "stringData": {
            "DATABASE_URL": IN_CLUSTER_DATABASE_URL,
            "FEEDBACK_TOKEN": "feedback-token-for-tests",
            "MLFLOW_BACKEND_STORE_URI": IN_CLUSTER_DATABASE_URL,
            # MLflow's basic auth (on by default): the admin and each workload's own user.
            "MLFLOW_ADMIN_PASSWORD": "admin-password-for-tests",
            "MLFLOW_WRITER_PASSWORD": "writer-password-for-tests",
            "MLFLOW_MONITOR_PASSWORD": "monitor-password-for-tests",
            "MLFLOW_READER_PASSWORD": "reader-password-for-tests",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests",
            "MODEL_SIGNING_KEY": TEST_SIGNING_KEY,
        },
    }
    storage = spool_storage(namespace) if values == "prod" else []
    kube.ok("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all([namespace_doc, secret, *storage]))


def install(kube: Kube, namespace: str, values: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``helm install --wait`` of the chart with a values set into ``namespace`` (hooks included)."""
    return kube.helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        *VALUES[values],
        *extra,
        "--wait",
        "--timeout",
        "150s",
    )


def release_objects(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """The release's objects as the API server holds them (from ``helm get manifest``)."""
    manifest = kube.helm("get", "manifest", RELEASE, "-n", namespace)
    assert manifest.returncode == 0, manifest.stderr
    docs = [d for d in yaml.safe_load_all(manifest.stdout) if d]
    got = kube.ok("get", "-f", "-", "-o", "json", stdin=yaml.safe_dump_all(docs))
    found = json.loads(got)
    return list(found["items"]) if found.get("kind") == "List" else [found]
