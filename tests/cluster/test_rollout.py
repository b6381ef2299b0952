"""Rollout on kwok nodes, and a node drain that respects the PodDisruptionBudget (tests/cluster/rollout.py).

kwok marks Pods Ready without running them: what is real is the scheduling, the controllers, the
eviction API and the disruption budget's arithmetic, not the containers' own readiness.
"""

from __future__ import annotations

from typing import Any

from services.local.cluster import NODES

from .rollout import DRAINED, SPARE, Rollout


def available(deployment: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in deployment["status"].get("conditions", [])}
    return conditions.get("Available") == "True"


def test_deployments_become_available_on_the_kwok_nodes(rollout: Rollout) -> None:
    assert rollout.install.returncode == 0, rollout.install.stderr
    assert rollout.deployments, "the release has Deployments"
    for deployment in rollout.deployments:
        assert available(deployment), deployment["metadata"]["name"]
    assert rollout.pods_before and set(rollout.pods_before.values()) <= set(NODES)


def test_pdb_and_hpa_are_accepted_and_live(rollout: Rollout) -> None:
    # The disruption controller computed the budget over the real Pods.
    assert rollout.pdb["status"]["expectedPods"] == 2 and rollout.pdb["status"]["currentHealthy"] == 2
    assert rollout.pdb["status"]["disruptionsAllowed"] == 1
    assert rollout.hpa["spec"]["minReplicas"] == 2
    assert rollout.hpa["spec"]["scaleTargetRef"]["name"].endswith("-inference")


def test_drain_waits_for_the_budget_then_finishes(rollout: Rollout) -> None:
    blocked = rollout.blocked_drain
    assert blocked is not None and blocked.returncode != 0, "with nowhere to go, the drain must not finish"
    assert "disruption budget" in blocked.stderr, blocked.stderr
    assert list(rollout.serving_while_blocked.values()) == [DRAINED], "one inference Pod kept serving"
    assert rollout.drain is not None
    assert rollout.drain.returncode == 0, rollout.drain.stderr
    assert f"node/{DRAINED} drained" in rollout.drain.stdout
    assert set(rollout.pods_after.values()) == {SPARE}, rollout.pods_after
    for deployment in rollout.deployments_after:
        assert available(deployment), deployment["metadata"]["name"]
