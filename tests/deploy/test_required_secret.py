"""The migration hook checks exactly the Secret keys the release's pods require.

The hook is the first pod of every sync; it refuses a missing Secret or key at once (its command is
tested in tests/unit/test_required_secret.py). This checks the other half of the contract on the
rendered chart: its required keys (``HOUSING_SECRET_KEYS``) equal the keys every other pod takes from
the Secret without ``optional: true`` (the trainer Job in its ConfigMap included), for every values
scenario plus MLflow with auth and anonymous feedback. Whether the kubelet mounts an absent optional
Secret as an empty folder is Kubernetes' documented behaviour, not run here (no kubelet). ~3 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .helpers import REQUIRED_SETS, find_tool, helm_template, scenario_args

# ci/minimal-values.yaml turns migrations (the hook) off: nothing checks the Secret there.
SCENARIOS = {
    **{name: args for name, args in scenario_args().items() if name != "ci/minimal-values.yaml"},
    "mlflow with auth": [
        *REQUIRED_SETS,
        "--set",
        "mlflow.server.enabled=true",
        "--set",
        "mlflow.server.auth.enabled=true",
    ],
    "anonymous feedback": [*REQUIRED_SETS, "--set", "inference.feedback.allowAnonymous=true"],
}


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc.get("kind") == "ConfigMap" and "trainer-job.yaml" in doc.get("data", {}):
        # The trainer Job the monitor stamps from this ConfigMap is a pod of the release too (the only
        # one with MODEL_SIGNING_KEY).
        doc = yaml.safe_load(doc["data"]["trainer-job.yaml"])
    spec = doc.get("spec", {})
    if doc.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    if isinstance(template, dict) and "spec" in template:
        yield template["spec"]


def _required_keys(pod: dict[str, Any]) -> set[str]:
    keys = set()
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional", False):
                keys.add(ref["key"])
    return keys


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_hook_requires_what_the_pods_require(scenario: str) -> None:
    proc = helm_template(find_tool("helm"), SCENARIOS[scenario])
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    hooks = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("-migrate")]
    assert len(hooks) == 1, scenario
    (hook,) = hooks
    container = hook["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    checked = set(env["HOUSING_SECRET_KEYS"].split())
    namespace, name = env["HOUSING_SECRET_REF"].split("/")

    pods_need: set[str] = set()
    for doc in docs:
        if doc is hook:
            continue
        for pod in _pod_specs(doc):
            pods_need |= _required_keys(pod)
    assert checked == pods_need, f"{scenario}: hook checks {checked}, pods require {pods_need}"

    # The hook itself starts without the Secret (every reference optional), and checks the one it mounts.
    assert _required_keys(hook["spec"]["template"]["spec"]) == set()
    volumes = {v["name"]: v for v in hook["spec"]["template"]["spec"]["volumes"]}
    assert volumes["secret"]["secret"] == {"secretName": name, "optional": True}
    assert namespace == "cali-housing"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "secret")
    assert env["HOUSING_SECRET_DIR"] == mount["mountPath"]
