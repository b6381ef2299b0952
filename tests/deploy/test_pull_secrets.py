"""`image.pullSecrets` reaches every pod the chart renders or stamps (a private GHCR package needs it on
all of them, the helm test pod and the trainer Job template included). One `helm template`, ~1 s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import yaml

from .helpers import CHART, helm_template


def _pod_specs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "containers" in node:
            yield node
        for value in node.values():
            yield from _pod_specs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _pod_specs(item)


def test_every_pod_template_pulls_with_the_secrets(tool: Callable[[str], str]) -> None:
    proc = helm_template(
        tool("helm"),
        ["-f", str(CHART / "values-prod.yaml"), "--set", "image.pullSecrets={ghcr-pull}"],
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    stamped = [
        yaml.safe_load(text)
        for d in docs
        if d["kind"] == "ConfigMap"
        for text in d.get("data", {}).values()
        if "kind: Job" in text
    ]
    specs = [
        (d["kind"], d["metadata"].get("name") or d["metadata"].get("generateName"), s)
        for d in docs + stamped
        for s in _pod_specs(d)
    ]
    kinds = {kind for kind, _, _ in specs}
    assert {"Deployment", "CronJob", "Job", "Pod"} <= kinds, kinds
    assert len(specs) >= 7, [name for _, name, _ in specs]
    missing = [name for _, name, spec in specs if spec.get("imagePullSecrets") != [{"name": "ghcr-pull"}]]
    assert not missing, missing
