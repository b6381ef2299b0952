"""Who may do what, asked of the real authorizer with a token the API issues to each ServiceAccount.

Each ServiceAccount of a release gets a TokenRequest token, as its pods would, and asks the server
what it may do (SelfSubjectRulesReview, what ``kubectl auth can-i --list`` shows) in its own
namespace and in another one, and a few pointed questions (SelfSubjectAccessReview). What every
authenticated user may do anyway (discovery, reviewing itself) is read from a ServiceAccount with no
binding at all and subtracted: the tables below are what the chart grants.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import NAMESPACES
from .helpers import Kube

MONITOR_NEEDS = {("batch", "jobs", "create"), ("batch", "jobs", "list")}
Rule = tuple[str, str, str]  # (api group, resource, verb)


def rules(kube: Kube, namespace: str) -> set[Rule]:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    status: dict[str, Any] = json.loads(
        kube.ok("create", "--validate=false", "-o", "json", "-f", "-", stdin=json.dumps(review))
    )["status"]
    assert not status.get("incomplete"), status
    return {
        (group, resource, verb)
        for rule in status["resourceRules"]
        for group in rule.get("apiGroups", [""])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    }


def can_i(kube: Kube, verb: str, resource: str, namespace: str) -> bool:
    proc = kube.kubectl("auth", "can-i", verb, resource, "-n", namespace)
    assert proc.stdout.strip() in {"yes", "no"}, proc.stderr
    return proc.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def baseline(kube: Kube) -> set[Rule]:
    """What any authenticated ServiceAccount may do with no binding of its own."""
    kube.ok("create", "namespace", "authz-baseline")
    kube.ok("create", "serviceaccount", "nobody", "-n", "authz-baseline")
    nobody = kube.as_service_account("nobody", "authz-baseline")
    assert nobody.whoami() == "system:serviceaccount:authz-baseline:nobody"
    return rules(nobody, "authz-baseline")


@pytest.mark.parametrize("values", sorted(NAMESPACES))
def test_each_service_account_may_do_what_it_needs_and_nothing_more(
    kube: Kube, releases: dict[str, str], baseline: set[Rule], values: str
) -> None:
    namespace = releases[values]
    accounts = [sa["metadata"]["name"] for sa in kube.get("serviceaccounts", "-n", namespace)["items"]]
    assert "cali-housing-monitor" in accounts and "cali-housing-trainer" in accounts, accounts
    table = {}
    for account in accounts:
        identity = kube.as_service_account(account, namespace)
        # A client that silently drops the token asks as anonymous: check who the server sees first.
        assert identity.whoami() == f"system:serviceaccount:{namespace}:{account}"
        table[account] = (rules(identity, namespace) - baseline, rules(identity, "kube-system") - baseline)
    expected: dict[str, tuple[set[Rule], set[Rule]]] = {account: (set(), set()) for account in accounts}
    expected["cali-housing-monitor"] = (MONITOR_NEEDS, set())
    assert table == expected


def test_the_monitor_is_refused_what_it_does_not_need(kube: Kube, releases: dict[str, str]) -> None:
    namespace = releases["prod"]
    monitor = kube.as_service_account("cali-housing-monitor", namespace)
    assert can_i(monitor, "create", "jobs.batch", namespace)
    assert can_i(monitor, "list", "jobs.batch", namespace)
    for verb, resource in [
        ("create", "pods"),
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods/exec"),
        ("delete", "jobs.batch"),
        ("patch", "jobs.batch"),
        ("create", "cronjobs.batch"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("update", "configmaps"),
        ("create", "validatingadmissionpolicies.admissionregistration.k8s.io"),
    ]:
        assert not can_i(monitor, verb, resource, namespace), (verb, resource)
    other = releases["dev"]
    assert not can_i(monitor, "create", "jobs.batch", other), "no other namespace"
    assert not can_i(monitor, "list", "jobs.batch", other)
