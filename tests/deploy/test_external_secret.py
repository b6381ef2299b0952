"""The Secret the GitOps way: with secrets.externalSecret on, an ExternalSecret writes the Secret that
every pod and the migration hook read, before the hook checks it.

No External Secrets Operator or Argo CD controller runs here: this checks the contract on the rendered
chart (the object's target, its ordering before the hook by Argo CD sync wave and Helm hook weight,
Orphan creation so pods keep the Secret while the hook object is recreated, the AppProject admitting
its kind) and that a cluster without the operator's API is refused with the fix named. ~3 s.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .helpers import REPO, REQUIRED_SETS, find_tool, helm_template

API = ["--api-versions", "external-secrets.io/v1/ExternalSecret"]
ON = [
    *REQUIRED_SETS,
    "--set",
    "secrets.externalSecret.enabled=true",
    "--set",
    "secrets.externalSecret.secretStoreRef.name=aws-secrets-manager",
    "--set",
    "secrets.externalSecret.remoteKey=cali-housing/prod",
]


def _render(extra: list[str]) -> list[dict[str, Any]]:
    proc = helm_template(find_tool("helm"), extra)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_off_by_default() -> None:
    assert not [d for d in _render([*REQUIRED_SETS, *API]) if d["kind"] == "ExternalSecret"]


def test_it_writes_the_secret_the_hook_checks_before_the_hook_runs() -> None:
    docs = _render([*ON, *API])
    (es,) = [d for d in docs if d["kind"] == "ExternalSecret"]
    (hook,) = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("-migrate")]
    env = {e["name"]: e.get("value") for e in hook["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HOUSING_SECRET_REF"] == f"cali-housing/{es['spec']['target']['name']}"
    assert es["spec"]["target"]["creationPolicy"] == "Orphan"
    assert es["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "aws-secrets-manager"}
    assert es["spec"]["dataFrom"] == [{"extract": {"key": "cali-housing/prod"}}]
    mine, theirs = es["metadata"]["annotations"], hook["metadata"]["annotations"]
    assert mine["argocd.argoproj.io/hook"] == theirs["argocd.argoproj.io/hook"] == "PreSync"
    assert int(mine["argocd.argoproj.io/sync-wave"]) < int(theirs.get("argocd.argoproj.io/sync-wave", "0"))
    assert "pre-install" in mine["helm.sh/hook"] and "pre-upgrade" in mine["helm.sh/hook"]
    assert int(mine["helm.sh/hook-weight"]) < int(theirs["helm.sh/hook-weight"])
    project = yaml.safe_load((REPO / "argocd" / "project.yaml").read_text())
    assert {"group": "external-secrets.io", "kind": "ExternalSecret"} in project["spec"][
        "namespaceResourceWhitelist"
    ]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (ON, "needs the External Secrets Operator (API external-secrets.io/v1)"),
        ([*ON, *API, "--set", "secrets.externalSecret.remoteKey="], "secrets.externalSecret.remoteKey"),
        (
            [*ON, *API, "--set", "secrets.externalSecret.secretStoreRef.name="],
            "secrets.externalSecret.secretStoreRef.name",
        ),
        (
            [*ON, *API, "--set", "secrets.externalSecret.secretStoreRef.kind=Vault"],
            "/secrets/externalSecret/secretStoreRef/kind",
        ),
    ],
    ids=["no operator", "no remote key", "no store", "unknown store kind"],
)
def test_refused_with_the_value_to_fix(extra: list[str], says: str) -> None:
    proc = helm_template(find_tool("helm"), extra)
    assert proc.returncode != 0
    assert says in proc.stderr, proc.stderr
