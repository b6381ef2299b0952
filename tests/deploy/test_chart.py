"""The Helm chart: lint, render, Kubernetes and CRD schemas, and what the manifests must say."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from .helpers import CHART, KUBE_VERSION, REPO, REQUIRED_SETS, Rendered, find_tool, run

WORKLOAD_KINDS = {"Deployment", "Job", "CronJob", "Pod"}
SECRET_ENV = {
    "DATABASE_URL",
    "FEEDBACK_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "ALERT_WEBHOOK_URL",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_WRITER_PASSWORD",
    "MLFLOW_MONITOR_PASSWORD",
    "MLFLOW_READER_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside any workload kind."""
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def trainer_job(r: Rendered) -> dict[str, Any]:
    cm = r.one("ConfigMap", "-trainer-job")
    return yaml.safe_load(cm["data"]["trainer-job.yaml"])


def workloads(r: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec the release can run, the stamped trainer Job included."""
    for doc in r.docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", pod_spec(doc)
    yield "trainer-job.yaml", pod_spec(trainer_job(r))


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_helm_lint_strict(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    for extra in (REQUIRED_SETS, ["-f", str(CHART / "values-prod.yaml")]):
        proc = run([helm, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *extra])
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scenarios_render_the_expected_kinds(rendered: dict[str, Rendered]) -> None:
    prod = rendered["prod"]
    kinds = {d["kind"] for d in prod.docs}
    expected = {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CronJob",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Job",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "PersistentVolumeClaim",
        "Pod",
    }
    assert expected <= kinds, f"missing: {expected - kinds}"
    assert not rendered["default"].kind("ServiceMonitor"), "CRD kinds must be opt-in"
    assert not rendered["ci/minimal-values.yaml"].kind("CronJob")


def test_kubernetes_schemas_strict(rendered: dict[str, Rendered]) -> None:
    find_tool("kubernetes-validate")
    paths = [str(r.path) for r in rendered.values()]
    proc = run(["bash", "ci/k8s-validate.sh", KUBE_VERSION, *paths])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stamped_trainer_job_is_a_valid_job(
    rendered: dict[str, Rendered], tool: Callable[[str], str]
) -> None:
    tool("kubernetes-validate")
    job = trainer_job(rendered["prod"])
    # What the monitor does before creating it.
    job["metadata"]["labels"]["housing.io/drift-report"] = "42"
    proc = run(["bash", "ci/k8s-validate.sh", KUBE_VERSION, "-"], stdin=yaml.safe_dump(job))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert "name" not in job["metadata"]
    assert job["metadata"]["generateName"] == "cali-housing-trainer-"
    for key in ("backoffLimit", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        assert isinstance(job["spec"][key], int), key
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["command"] == ["housing", "train"]
    assert "/cali-housing-trainer:" in container["image"]
    # The estimate's band is measured in chunks of the monitor's smallest window: one value for both.
    monitor = pod_spec(rendered["prod"].one("CronJob", "-monitor"))["containers"][0]
    assert env_of(container)["DRIFT_MIN_ROWS"] == env_of(monitor)["DRIFT_MIN_ROWS"]


def test_trainer_template_has_no_argo_tracking(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        job = trainer_job(r)
        text = yaml.safe_dump(job)
        assert "argocd.argoproj.io" not in text, r.name
        assert "app.kubernetes.io/instance" not in text, f"{r.name}: Argo CD's default tracking label"
        labels = job["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "trainer"
        assert labels["housing.io/release"] == "cali-housing"
        assert labels["app.kubernetes.io/name"] == "cali-housing"
        assert job["spec"]["template"]["metadata"]["labels"]["housing.io/release"] == "cali-housing"


def test_crd_kinds_against_their_schemas(rendered_dir: Any, tool: Callable[[str], str]) -> None:
    node = tool("node")
    if not (REPO / "ci" / "node_modules" / "@kubernetes-models").is_dir():
        tool("ci/node_modules/@kubernetes-models (npm)")
    files = sorted(str(p) for p in rendered_dir.glob("*.yaml"))
    argocd = sorted(str(p) for p in (REPO / "argocd").rglob("*.yaml"))
    proc = run([node, "ci/crd-validate.mjs", *files, *argocd])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = proc.stdout.count("OK ")
    assert checked >= 4 + 2 * 3, f"too few CRD objects validated:\n{proc.stdout}"


def test_security_contexts_hardened(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for name, spec in workloads(r):
            psc = spec["securityContext"]
            assert psc["runAsNonRoot"] is True, (r.name, name)
            assert psc["seccompProfile"]["type"] == "RuntimeDefault", (r.name, name)
            assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
            for c in spec["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, (r.name, name)
                assert sc["readOnlyRootFilesystem"] is True, (r.name, name)
                assert sc["capabilities"]["drop"] == ["ALL"], (r.name, name)
                assert "add" not in sc["capabilities"], (r.name, name)
                assert sc.get("privileged") is not True
                assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], (r.name, name)
                tag = c["image"].rsplit(":", 1)[-1]
                assert (tag and tag != "latest" and "@" not in tag) or "sha256" in c["image"], c["image"]


def test_writable_folders_are_emptydirs(rendered: dict[str, Rendered]) -> None:
    for name, spec in workloads(rendered["prod"]):
        if name.startswith("Pod/"):
            continue  # the helm test pod writes nothing
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/var/lib/housing"]], name
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            if c["name"] not in ("mlflow", "upgrade"):  # the MLflow image: HOME, not HOUSING_HOME
                assert env_of(c)["HOUSING_HOME"]["value"] == "/var/lib/housing", name


def test_service_accounts_tokens_only_for_the_monitor(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    for name, spec in workloads(r):
        expected = name == "CronJob/cali-housing-monitor"
        assert spec.get("automountServiceAccountToken") is expected, name
    for sa in r.kind("ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_inference_deployment(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    dep = r.one("Deployment", "-inference")
    spec = dep["spec"]
    assert "replicas" not in spec, "the HPA owns replicas (Argo CD ignores /spec/replicas)"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = pod_spec(dep)
    assert 20 <= pod["terminationGracePeriodSeconds"] <= 60
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    (c,) = pod["containers"]
    assert c["command"] == ["housing", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["port"] == "http" and c["ports"][0]["containerPort"] == 8000
    assert 0 < c["lifecycle"]["preStop"]["sleep"]["seconds"] < pod["terminationGracePeriodSeconds"]
    env = env_of(c)
    assert env["OMP_NUM_THREADS"]["value"] == "1"
    assert env["MODEL_POLL_SECONDS"]["value"] == "10"
    assert env["SHADOW_CHALLENGER"]["value"] == "false"
    assert env["PREDICT_MAX_BATCH"]["value"] == "1000"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://cali-housing-mlflow:5000"
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "housing-secrets",
        "key": "DATABASE_URL",
    }
    assert env["FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is False
    hpa = r.one("HorizontalPodAutoscaler", "-inference")
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = r.one("PodDisruptionBudget", "-inference")
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    svc = r.one("Service", "-inference")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    no_hpa = rendered["ci/hosted-registry-s3-values.yaml"]
    assert no_hpa.one("Deployment", "-inference")["spec"]["replicas"] == 2
    assert not no_hpa.kind("HorizontalPodAutoscaler")


def test_monitor_cronjob(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    cj = r.one("CronJob", "-monitor")
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    assert cj["spec"]["startingDeadlineSeconds"] > 0
    assert cj["spec"]["successfulJobsHistoryLimit"] >= 1 and cj["spec"]["failedJobsHistoryLimit"] >= 1
    pod = pod_spec(cj)
    (c,) = pod["containers"]
    assert c["command"] == ["housing", "monitor"]
    env = env_of(c)
    assert env["TRAINER_LAUNCHER"]["value"] == "kubernetes"
    assert env["TRAINER_JOB_TEMPLATE"]["value"] == "/etc/housing/trainer-job.yaml"
    assert env["TRAINER_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["REPORTS_DIR"]["value"].startswith("/var/lib/housing/")
    expected = {
        "DRIFT_WINDOW_HOURS": "24",
        "DRIFT_MIN_ROWS": "500",
        "PSI_THRESHOLD": "0.2",
        "DRIFT_SHARE_THRESHOLD": "0.5",
        "ALERT_COOLDOWN_MINUTES": "60",
        "RETRAIN_MIN_NEW_LABELS": "667",
    }
    for key, value in expected.items():
        assert env[key]["value"] == value, key
    # The rollback test's settings: under the names the monitor reads, with the code's defaults.
    from services.monitor.settings import MonitorSettings

    rollback = yaml.safe_load((CHART / "values.yaml").read_text())["monitor"]["rollback"]
    names = {
        "minRows": "ROLLBACK_MIN_ROWS",
        "alpha": "ROLLBACK_ALPHA",
        "minEffect": "ROLLBACK_MIN_EFFECT",
        "horizonLabels": "ROLLBACK_HORIZON_LABELS",
        "cooldownLabels": "ROLLBACK_COOLDOWN_LABELS",
    }
    assert set(rollback) == set(names)
    for key, variable in names.items():
        assert float(env[variable]["value"]) == float(rollback[key]), variable
        assert float(rollback[key]) == float(MonitorSettings.model_fields[variable.lower()].default), key
    for key in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "ALERT_WEBHOOK_URL"):
        assert env[key]["valueFrom"]["secretKeyRef"]["optional"] is True
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/housing")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == r.one("ConfigMap", "-trainer-job")["metadata"]["name"]
    assert pod["serviceAccountName"] == "cali-housing-monitor"


def test_rbac_least_privilege(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        assert not r.kind("ClusterRole") and not r.kind("ClusterRoleBinding"), r.name
        # What each ServiceAccount may do is asked of a real authorizer in tests/cluster.
        for role in r.kind("Role"):
            assert "*" not in yaml.safe_dump(role["rules"])
        for rb in r.kind("RoleBinding"):
            assert rb["roleRef"]["kind"] == "Role"
            assert [s["name"] for s in rb["subjects"]] == ["cali-housing-monitor"]


def test_no_secret_literals(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        assert not r.kind("Secret"), f"{r.name}: the chart must only reference an existing Secret"
        for name, spec in workloads(r):
            for c in spec["containers"]:
                for key, e in env_of(c).items():
                    if key in SECRET_ENV:
                        assert "value" not in e, (r.name, name, key)
                        assert e["valueFrom"]["secretKeyRef"]["name"], (r.name, name, key)
        text = r.path.read_text()
        assert not re.search(r"postgres(ql)?(\+\w+)?://[^\s'\"]*:[^\s'\"@]+@", text), (
            f"{r.name}: credentials in a URL"
        )
    values = (CHART / "values.yaml").read_text()
    assert not re.search(
        r"(?i)(password|token|secret_access_key)\s*:\s*['\"]?[^'\"\s{]+", values.split("keys:")[0]
    )


def test_migration_hook_runs_before_sync(rendered: dict[str, Rendered]) -> None:
    job = rendered["prod"].one("Job", "-migrate")
    ann = job["metadata"]["annotations"]
    assert set(ann["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert ann["argocd.argoproj.io/hook"] == "PreSync"
    (c,) = pod_spec(job)["containers"]
    assert c["command"] == ["housing", "db", "migrate"]


def test_helm_test_calls_readyz(rendered: dict[str, Rendered]) -> None:
    pod = rendered["prod"].one("Pod", "-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "/readyz" in " ".join(pod["spec"]["containers"][0]["command"])


def test_argocd_ignores_replicas_of_the_rendered_deployment(rendered: dict[str, Rendered]) -> None:
    for env in ("staging", "prod"):
        app = yaml.safe_load((REPO / "argocd" / "apps" / f"cali-housing-{env}.yaml").read_text())
        dep = rendered[env].one("Deployment", "-inference")
        ignored = app["spec"]["ignoreDifferences"][0]
        assert ignored["name"] == dep["metadata"]["name"] and "/spec/replicas" in ignored["jsonPointers"]
        assert app["spec"]["source"]["helm"]["releaseName"] == "cali-housing"
        assert app["spec"]["source"]["helm"]["valueFiles"] == [f"values-{env}.yaml"]
        sync = app["spec"]["syncPolicy"]
        assert sync["automated"] == {"prune": True, "selfHeal": True}
        assert "CreateNamespace=true" in sync["syncOptions"] and sync["retry"]["limit"] > 0
    prod = yaml.safe_load((REPO / "argocd" / "apps" / "cali-housing-prod.yaml").read_text())
    assert prod["spec"]["source"]["targetRevision"] not in {"HEAD", "main", "master", ""}, (
        "production is pinned"
    )


def test_argocd_project_is_scoped() -> None:
    project = yaml.safe_load((REPO / "argocd" / "project.yaml").read_text())
    assert "*" not in yaml.safe_dump(project["spec"]["sourceRepos"])
    namespaces = {d["namespace"] for d in project["spec"]["destinations"]}
    assert namespaces == {"cali-housing-staging", "cali-housing-prod", "argocd"}
    apps = [yaml.safe_load(p.read_text()) for p in (REPO / "argocd").rglob("*.yaml")]
    for app in (
        a
        for a in apps
        if a["kind"] == "Application" and a["spec"]["project"] not in {"monitoring", "platform"}
    ):
        assert app["spec"]["project"] == "cali-housing"
        assert app["spec"]["source"]["repoURL"] in project["spec"]["sourceRepos"]
        assert app["spec"]["destination"]["namespace"] in namespaces


def test_values_document_every_key() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param ([\w.]+)", text, re.MULTILINE))

    def leaves(node: Any, prefix: str = "") -> Iterator[str]:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                yield from leaves(v, f"{prefix}{k}." if prefix or k else k)
        else:
            yield prefix.rstrip(".")

    values = yaml.safe_load(text)
    for key in leaves(values):
        parts = key.split(".")
        assert any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)), (
            f"undocumented: {key}"
        )


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_environment_values_pin_a_sha_string(env: str) -> None:
    values = yaml.safe_load((CHART / f"values-{env}.yaml").read_text())
    tag = values["image"]["tag"]
    assert isinstance(tag, str) and re.fullmatch(r"[0-9a-f]{7,40}", tag), tag
    assert values["secrets"]["existingSecret"]


def service_images(r: Rendered) -> dict[str, set[str]]:
    """Images of the three service repositories, by where they run (containers and init containers)."""
    found: dict[str, set[str]] = {}
    for where, spec in workloads(r):
        for c in spec.get("initContainers", []) + spec["containers"]:
            if re.search(r"/cali-housing-(inference|monitor|trainer)[@:]", c["image"]):
                found.setdefault(c["image"], set()).add(where)
    return found


@pytest.mark.parametrize(
    ("scenario", "pinned"), [("default", False), ("ci/hosted-registry-s3-values.yaml", True)]
)
def test_a_digest_pins_every_pod_image_of_its_service(
    rendered: dict[str, Rendered], scenario: str, pinned: bool
) -> None:
    """With `<service>.image.digest` set (as prod after the promotion workflow) every pod, the stamped
    trainer Job included, pulls `repository@sha256:...`: the bytes that ran in staging, not a tag."""
    images = service_images(rendered[scenario])
    assert len(images) == 3, images  # inference, monitor, trainer
    if not pinned:
        assert all(i.endswith(":0123456789abcdef") for i in images), images
        return
    values = yaml.safe_load((CHART / scenario).read_text())
    expected = {
        f"ghcr.io/{values[s]['image']['repository']}@{values[s]['image']['digest']}"
        for s in ("inference", "monitor", "trainer")
    }
    assert set(images) == expected
    wheres = set().union(*images.values())
    assert "trainer-job.yaml" in wheres and any(w.startswith("Deployment/") for w in wheres)


def test_image_digest_must_be_a_sha256(tool: Callable[[str], str]) -> None:
    proc = run(
        [tool("helm"), "template", "x", str(CHART), *REQUIRED_SETS, "--set", "trainer.image.digest=v1.2"]
    )
    assert proc.returncode != 0 and "/trainer/image/digest" in proc.stderr, proc.stderr


def test_network_policies_cover_stamped_trainer_jobs(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    job_labels = trainer_job(r)["spec"]["template"]["metadata"]["labels"]
    deny = r.one("NetworkPolicy", "-default-deny")
    assert deny["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()
    mlflow = r.one("NetworkPolicy", "-mlflow")
    peers = [p["podSelector"]["matchLabels"] for p in mlflow["spec"]["ingress"][0]["from"]]
    assert any(peer.items() <= job_labels.items() for peer in peers), (
        "trainer Jobs must reach the in-chart MLflow server"
    )
    for doc in r.docs:
        if doc["kind"] in WORKLOAD_KINDS:
            template_labels = (
                doc["metadata"]["labels"]
                if doc["kind"] == "Pod"
                else (
                    doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
                    if doc["kind"] == "CronJob"
                    else doc["spec"]["template"]["metadata"]["labels"]
                )
            )
            assert deny["spec"]["podSelector"]["matchLabels"].items() <= template_labels.items(), doc["kind"]
    ingress = r.one("NetworkPolicy", "-inference")["spec"]["ingress"][0]
    assert ingress["ports"][0]["port"] == 8000
    scoped = rendered["ci/hosted-registry-s3-values.yaml"].one("NetworkPolicy", "-inference")
    peers = scoped["spec"]["ingress"][0]["from"]
    assert {} not in [p.get("namespaceSelector") for p in peers], (
        "an empty namespaceSelector opens every namespace"
    )
