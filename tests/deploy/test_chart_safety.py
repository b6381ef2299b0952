"""Production safety of the chart: feedback needs a token, the spool outlives its pod, the shutdown
fits the grace period, egress by destination, no secret on a command line, the release fits the node."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import REPO, REQUIRED_SETS, Rendered, helm_notes, helm_template
from .test_chart import env_of, pod_spec, trainer_job, workloads

SPOOL_PATH = "/var/lib/housing/spool"
GIB = 1024**3
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "8Gi", 2) as a number (cores or bytes)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(value))
    assert match, value
    return float(match.group(1)) * _SUFFIX[match.group(2) or ""]


def inference_container(r: Rendered) -> dict[str, Any]:
    (c,) = pod_spec(r.one("Deployment", "-inference"))["containers"]
    return c


def render(helm: str, *args: str) -> Rendered:
    proc = helm_template(helm, [*REQUIRED_SETS, *args])
    assert proc.returncode == 0, proc.stderr
    return Rendered("custom", Path("custom.yaml"), [d for d in yaml.safe_load_all(proc.stdout) if d])


# --- 1. Feedback needs a token -------------------------------------------------------------------


def test_feedback_token_is_mandatory_by_default(rendered: dict[str, Rendered]) -> None:
    for name in ("default", "staging", "prod"):
        env = env_of(inference_container(rendered[name]))
        ref = env["FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]
        # Not optional: the kubelet refuses to start a pod whose Secret lacks the key.
        assert ref.get("optional", False) is False, name
        assert ref["key"] == "FEEDBACK_TOKEN" and ref["name"], name


def test_anonymous_feedback_drops_the_token_and_warns(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    anonymous = render(helm, "--set", "inference.feedback.allowAnonymous=true")
    assert "FEEDBACK_TOKEN" not in env_of(inference_container(anonymous))
    notes = helm_notes(helm, [*REQUIRED_SETS, "--set", "inference.feedback.allowAnonymous=true"])
    assert "WARNING: inference.feedback.allowAnonymous=true" in notes
    assert "poison" in notes and "rollback" in notes
    default_notes = helm_notes(helm, REQUIRED_SETS)
    assert "WARNING: inference.feedback.allowAnonymous" not in default_notes
    assert "FEEDBACK_TOKEN is mandatory" in default_notes


def test_missing_secret_message_names_the_feedback_token(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    proc = helm_template(helm, ["--set", "image.tag=0123abc"])
    assert proc.returncode != 0
    required = proc.stderr.split("(required)")[0]
    assert "FEEDBACK_TOKEN" in required, proc.stderr
    anonymous = helm_template(
        helm, ["--set", "image.tag=0123abc", "--set", "inference.feedback.allowAnonymous=true"]
    )
    assert "FEEDBACK_TOKEN" not in anonymous.stderr.split("(required)")[0], anonymous.stderr


# --- 4. The prediction spool survives its pod ----------------------------------------------------


def spool_volume(r: Rendered) -> dict[str, Any]:
    pod = pod_spec(r.one("Deployment", "-inference"))
    (c,) = pod["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == SPOOL_PATH]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume


def max_inference_pods(r: Rendered) -> int:
    """The HPA's maximum (else the Deployment's replicas) plus the rollout's surge pod."""
    dep = r.one("Deployment", "-inference")
    hpas = r.kind("HorizontalPodAutoscaler")
    replicas = hpas[0]["spec"]["maxReplicas"] if hpas else dep["spec"]["replicas"]
    return replicas + dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"]


def test_spool_is_a_kept_claim_shared_by_every_replica(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        c = inference_container(r)
        env = env_of(c)
        assert env["SPOOL_DIR"]["value"] == SPOOL_PATH, r.name
        max_bytes = int(env["SPOOL_MAX_BYTES"]["value"])
        pvc = r.one("PersistentVolumeClaim", "-inference-spool")
        assert spool_volume(r)["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"], r.name
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", r.name
        assert pvc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",") == [
            "Prune=false",
            "Delete=false",
        ], r.name
        # Room for every server's spool at once, the surge pod of a rollout included.
        size = quantity(pvc["spec"]["resources"]["requests"]["storage"])
        assert size >= max_inference_pods(r) * max_bytes, r.name
        # The non-root user can write it: the pod's fsGroup owns a local volume; on EFS (prod,
        # staging) the access point makes every operation uid/gid 10001 (test_terraform_resilience.py).
        assert pod_spec(r.one("Deployment", "-inference"))["securityContext"]["fsGroup"] == 10001
    assert env_of(inference_container(rendered["default"]))["SPOOL_MAX_BYTES"]["value"] == str(GIB)


def test_read_write_once_spool_keeps_replicas_on_one_node(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    dep = r.one("Deployment", "-inference")
    assert r.one("PersistentVolumeClaim", "-inference-spool")["spec"]["accessModes"] == ["ReadWriteOnce"]
    (term,) = pod_spec(dep)["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert term["labelSelector"]["matchLabels"].items() <= labels.items(), "the term must select its peers"


def test_read_write_many_spool_lets_replicas_spread(tool: Callable[[str], str]) -> None:
    user_affinity = '{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,'
    user_affinity += '"preference":{"matchExpressions":[{"key":"pool","operator":"In","values":["a"]}]}}]}}'
    many = render(
        tool("helm"),
        "--set",
        "inference.spool.persistence.accessMode=ReadWriteMany",
        "--set-json",
        f"inference.affinity={user_affinity}",
    )
    affinity = pod_spec(many.one("Deployment", "-inference"))["affinity"]
    assert "podAffinity" not in affinity
    assert affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 1
    assert many.one("PersistentVolumeClaim", "-inference-spool")["spec"]["accessModes"] == ["ReadWriteMany"]
    once = render(tool("helm"), "--set-json", f"inference.affinity={user_affinity}")
    merged = pod_spec(once.one("Deployment", "-inference"))["affinity"]
    assert "nodeAffinity" in merged and "podAffinity" in merged, "the user's affinity is kept"


def test_prod_and_staging_spread_inference_over_the_nodes(rendered: dict[str, Rendered]) -> None:
    """Their spool is ReadWriteMany on EFS: no affinity holds the replicas together, and a spread over
    hostnames places them apart (soft: a lost node still listed must not stop a replacement)."""
    for name in ("prod", "staging"):
        r = rendered[name]
        assert r.one("PersistentVolumeClaim", "-inference-spool")["spec"]["accessModes"] == ["ReadWriteMany"]
        dep = r.one("Deployment", "-inference")
        assert "podAffinity" not in pod_spec(dep).get("affinity", {}), name
        (spread,) = pod_spec(dep)["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1, name
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway", name
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items(), "it must count its peers"


def test_spool_without_persistence_is_an_emptydir_and_notes_warn(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    off = ["--set", "inference.spool.persistence.enabled=false"]
    r = render(helm, *off)
    assert not r.kind("PersistentVolumeClaim") or all(
        not p["metadata"]["name"].endswith("-inference-spool") for p in r.kind("PersistentVolumeClaim")
    )
    volume = spool_volume(r)
    # Never evicted for a full spool: the emptyDir holds more than SPOOL_MAX_BYTES.
    assert quantity(volume["emptyDir"]["sizeLimit"]) > GIB
    assert "affinity" not in pod_spec(r.one("Deployment", "-inference"))
    notes = helm_notes(helm, [*REQUIRED_SETS, *off])
    assert "spooled rows die with the pod" in notes
    assert "spooled rows die with the pod" not in helm_notes(helm, REQUIRED_SETS)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--set", "inference.spool.persistence.size=6Gi"],
            ["inference.spool.persistence.size", "7 pods", "at least 7Gi"],
        ),
        (
            ["--set", "inference.autoscaling.enabled=false", "--set", "inference.replicaCount=4",
             "--set", "inference.spool.maxBytes=2147483648"],
            ["inference.replicaCount 4", "at least 10Gi"],
        ),
        (
            ["--set", "inference.spool.persistence.size=lots"],
            ["/inference/spool/persistence/size"],
        ),
    ],
)  # fmt: skip
def test_too_small_spool_claim_is_refused(
    tool: Callable[[str], str], args: list[str], needles: list[str]
) -> None:
    proc = helm_template(tool("helm"), [*REQUIRED_SETS, *args])
    assert proc.returncode != 0, f"accepted {args}"
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# --- 6b. The shutdown fits the grace period ------------------------------------------------------


def test_shutdown_budget_fits_the_grace_period(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        pod = pod_spec(r.one("Deployment", "-inference"))
        c = inference_container(r)
        env = env_of(c)
        budget = (
            c["lifecycle"]["preStop"]["sleep"]["seconds"]
            + float(env["HTTP_SHUTDOWN_SECONDS"]["value"])
            + float(env["LOG_DRAIN_SECONDS"]["value"])
            + 5
        )
        assert budget <= pod["terminationGracePeriodSeconds"], r.name
    env = env_of(inference_container(rendered["default"]))
    assert (env["HTTP_SHUTDOWN_SECONDS"]["value"], env["LOG_DRAIN_SECONDS"]["value"]) == ("10", "20")


def test_shutdown_longer_than_the_grace_period_is_refused(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    proc = helm_template(helm, [*REQUIRED_SETS, "--set", "inference.logDrainSeconds=30"])
    assert proc.returncode != 0
    assert "inference.terminationGracePeriodSeconds (45) is shorter than the shutdown" in proc.stderr
    assert "= 50 s" in proc.stderr and "at least 50" in proc.stderr, proc.stderr
    fits = helm_template(
        helm,
        [
            *REQUIRED_SETS,
            "--set",
            "inference.logDrainSeconds=30",
            "--set",
            "inference.terminationGracePeriodSeconds=50",
        ],
    )
    assert fits.returncode == 0, fits.stderr


# --- 3. No secret on a command line; the MLflow server's settings from the environment -----------

SECRET_LOOKING = re.compile(
    r"(?i)(postgres(ql)?(\+\w+)?://|://[^/\s@]*:[^/\s@]*@|password|passwd|secret|token|api[_-]?key)"
)


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_no_secret_on_any_command_line(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        for name, spec in workloads(r):
            for c in containers(spec):
                assert not any("secretRef" in e for e in c.get("envFrom", [])), (r.name, name)
                from_secret = {
                    e["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
                }
                for arg in [*c.get("command", []), *c.get("args", [])]:
                    # Kubernetes expands $(VAR) in command and args: the value would be on the command line.
                    expanded = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg))
                    assert not expanded & from_secret, (r.name, name, arg)
                    assert not SECRET_LOOKING.search(arg), (r.name, name, arg)


def mlflow_container(r: Rendered) -> dict[str, Any]:
    (c,) = pod_spec(r.one("Deployment", "-mlflow"))["containers"]
    return c


def test_mlflow_server_takes_its_store_from_the_secret_through_its_own_envvar(
    rendered: dict[str, Rendered],
) -> None:
    from mlflow.cli import server  # the installed MLflow: which variables its options read

    envvars = {opt: p.envvar for p in server.params for opt in p.opts}
    assert envvars["--backend-store-uri"] == "MLFLOW_BACKEND_STORE_URI"
    for r in rendered.values():
        if not [d for d in r.kind("Deployment") if d["metadata"]["name"].endswith("-mlflow")]:
            continue
        c = mlflow_container(r)
        line = " ".join([*c["command"], *c.get("args", [])])
        assert "--backend-store-uri" not in line and "$(" not in line, (r.name, line)
        ref = env_of(c)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == "MLFLOW_BACKEND_STORE_URI" and ref.get("optional", False) is False, r.name


def test_prod_keeps_artifacts_in_object_storage(rendered: dict[str, Rendered]) -> None:
    prod = rendered["prod"]
    args = mlflow_container(prod)["args"]
    assert any(a.startswith("--artifacts-destination=s3://") for a in args), args
    assert not [p for p in prod.kind("PersistentVolumeClaim") if p["metadata"]["name"].endswith("-artifacts")]
    volumes = pod_spec(prod.one("Deployment", "-mlflow"))["volumes"]
    assert not [v for v in volumes if "persistentVolumeClaim" in v], "no PVC where an object store is set"
    staging = rendered["staging"]
    assert "--artifacts-destination=/mlartifacts" in mlflow_container(staging)["args"]
    assert staging.one("PersistentVolumeClaim", "-mlflow-artifacts")


def mlflow_auth_config_reader() -> Callable[[], Any]:
    """MLflow's own reader of the basic-auth settings (mlflow/server/auth/config.py).

    Loaded from its file: importing the `mlflow.server.auth` package needs the `mlflow[auth]` extra
    (Flask-WTF), which the server image must have but this test environment does not.
    """
    import mlflow

    path = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config_under_test", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_auth_config


PASSWORD_KEYS = {
    "admin": "MLFLOW_ADMIN_PASSWORD",
    "writer": "MLFLOW_WRITER_PASSWORD",
    "monitor": "MLFLOW_MONITOR_PASSWORD",
    "reader": "MLFLOW_READER_PASSWORD",
}


def secret_keys(spec: dict[str, Any]) -> set[str]:
    """Every Secret key a pod's containers (init containers included) take."""
    keys = set()
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                keys.add(ref["key"])
    return keys


def test_mlflow_basic_auth_is_on_by_default_with_its_store_in_the_backend_database(
    rendered: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.cli import server

    read_auth_config = mlflow_auth_config_reader()
    (app_name,) = [p for p in server.params if "--app-name" in p.opts]
    assert "basic-auth" in app_name.type.choices
    for name in ("default", "staging", "prod", "ci/mlflow-auth-values.yaml"):
        r = rendered[name]
        c = mlflow_container(r)
        assert "--app-name=basic-auth" in c["args"], name
        env = env_of(c)
        assert env["MLFLOW_AUTH_ADMIN_USERNAME"]["value"] == "admin"
        for var, key in {
            "MLFLOW_AUTH_ADMIN_PASSWORD": "MLFLOW_ADMIN_PASSWORD",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "MLFLOW_FLASK_SERVER_SECRET_KEY",
        }.items():
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["key"] == key and ref["optional"] is False, (name, var)
        assert not [m for m in r.kind("ConfigMap") if "basic_auth" in yaml.safe_dump(m)], (
            "no ConfigMap holds it"
        )

    # The settings file is written at the pod's start, by the init container, from the Secret, into
    # a memory-backed emptyDir: run that very script and let MLflow's own reader read the result.
    r = rendered["default"]
    spec = pod_spec(r.one("Deployment", "-mlflow"))
    (init,) = spec["initContainers"]
    path = env_of(mlflow_container(r))["MLFLOW_AUTH_CONFIG_PATH"]["value"]
    folder, filename = path.rsplit("/", 1)
    (mount,) = [m for m in init["volumeMounts"] if m["mountPath"] == folder]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    ref = env_of(init)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "MLFLOW_BACKEND_STORE_URI"
    assert init["command"][:2] == ["python", "-c"]
    script = init["command"][2].replace(folder, str(tmp_path))
    store = "postgresql+psycopg://mlflow:p%40ss%25word@db:5432/mlflow"  # '%' must survive configparser
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", store)
    monkeypatch.setenv("AUTH_DEFAULT_PERMISSION", env_of(init)["AUTH_DEFAULT_PERMISSION"]["value"])
    exec(compile(script, "auth-config", "exec"), {})  # the chart's own script
    assert (tmp_path / filename).stat().st_mode & 0o077 == 0, "only the server's user reads it"
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / filename))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-secret")
    config = read_auth_config()
    assert config.database_uri == store, "the user store is the backend database: it persists"
    assert config.default_permission == "READ", "the reader needs only a login"
    assert (config.admin_username, config.admin_password) == ("admin", "from-the-secret")

    # Turned off: no auth app, no init container, no logins for the clients.
    off = render(find_helm(), "--set", "mlflow.server.auth.enabled=false")
    assert "--app-name=basic-auth" not in mlflow_container(off)["args"]
    assert "initContainers" not in pod_spec(off.one("Deployment", "-mlflow"))
    assert "MLFLOW_TRACKING_PASSWORD" not in env_of(inference_container(off))
    assert not [j for j in off.kind("Job") if j["metadata"]["name"].endswith("-mlflow-users")]


def test_each_workload_logs_in_as_its_own_mlflow_user(rendered: dict[str, Rendered]) -> None:
    """Inference reads; the monitor and maintenance CronJobs are the monitor user; the trainer Job
    (stamped by the monitor from its template) the writer; only the users hook and the server hold
    the admin password, and nothing holds two identities' passwords."""
    identity = {
        "Deployment/cali-housing-inference": "reader",
        "CronJob/cali-housing-monitor": "monitor",
        "CronJob/cali-housing-maintain": "monitor",
        "trainer-job.yaml": "writer",
        "Job/cali-housing-mlflow-users": "users hook",
        "Deployment/cali-housing-mlflow": "admin",
    }
    for name in ("default", "staging", "prod", "ci/mlflow-auth-values.yaml"):
        r = rendered[name]
        seen = set()
        for workload, spec in workloads(r):
            held = {who for who, key in PASSWORD_KEYS.items() if key in secret_keys(spec)}
            who = identity.get(workload)
            if who is None:
                assert held == set(), (name, workload, held)
                continue
            seen.add(workload)
            if who == "users hook":
                assert held == set(PASSWORD_KEYS), (name, workload, held)
                continue
            assert held == {who}, (name, workload, held)
            if who != "admin":
                (c,) = spec["containers"]
                env = env_of(c)
                assert env["MLFLOW_TRACKING_USERNAME"]["value"] == who, (name, workload)
                ref = env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]
                assert ref["key"] == PASSWORD_KEYS[who] and ref["optional"] is False, (name, workload)
        assert {
            "Deployment/cali-housing-inference",
            "trainer-job.yaml",
            "Job/cali-housing-mlflow-users",
        } <= seen
        # The monitor stamps the trainer Job from the ConfigMap: it carries a reference, not a password.
        monitor = [spec for w, spec in workloads(r) if w == "CronJob/cali-housing-monitor"]
        if monitor:
            assert PASSWORD_KEYS["writer"] not in secret_keys(monitor[0])


def test_the_users_hook_runs_after_the_server_and_before_inference(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    (job,) = [j for j in r.kind("Job") if j["metadata"]["name"].endswith("-mlflow-users")]
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "post-install,post-upgrade"
    assert notes["argocd.argoproj.io/hook"] == "Sync"
    wave = int(notes["argocd.argoproj.io/sync-wave"])
    server = r.one("Deployment", "-mlflow")["metadata"].get("annotations", {})
    inference = r.one("Deployment", "-inference")["metadata"]["annotations"]
    assert int(server.get("argocd.argoproj.io/sync-wave", "0")) < wave
    assert wave < int(inference["argocd.argoproj.io/sync-wave"])
    (c,) = pod_spec(job)["containers"]
    assert c["command"] == ["housing", "mlflow-users"]
    assert c["image"].split("@")[0].split(":")[0].endswith("-trainer")
    env = env_of(c)
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://cali-housing-mlflow:5000"
    assert "MLFLOW_TRACKING_PASSWORD" not in env, "the admin logs in explicitly, never as a tracking client"
    assert {env[f"MLFLOW_{who.upper()}_USERNAME"]["value"] for who in PASSWORD_KEYS} == set(PASSWORD_KEYS)


def test_auth_needs_its_keys_in_the_secret_message(tool: Callable[[str], str]) -> None:
    proc = helm_template(tool("helm"), ["--set", "image.tag=0123abc"])
    assert proc.returncode != 0
    required = proc.stderr.split("(required)")[0]
    for key in (*PASSWORD_KEYS.values(), "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert key in required, proc.stderr
        assert f"--from-literal={key}=" in proc.stderr, proc.stderr


def find_helm() -> str:
    from .helpers import find_tool

    return find_tool("helm")


# --- 2. Egress by destination, not port ----------------------------------------------------------

DNS = {(53, "UDP"), (53, "TCP")}
DATABASE = {(5432, "TCP"), (6543, "TCP")}
HTTPS = {(443, "TCP")}
METADATA = ipaddress.ip_address("169.254.169.254")
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def pod_labels(r: Rendered) -> dict[str, dict[str, str]]:
    """The pod template labels of every component the release runs."""
    labels: dict[str, dict[str, str]] = {}
    for doc in r.docs:
        kind = doc["kind"]
        if kind == "Pod":
            template = doc["metadata"]["labels"]
        elif kind == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        elif kind in {"Deployment", "Job"}:
            template = doc["spec"]["template"]["metadata"]["labels"]
        else:
            continue
        labels[template["app.kubernetes.io/component"]] = template
    labels["trainer"] = trainer_job(r)["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return selector.get("matchLabels", {}).items() <= labels.items()


def egress_rules(r: Rendered, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every egress rule that applies to a pod with these labels (NetworkPolicies add up)."""
    return [
        rule
        for np in r.kind("NetworkPolicy")
        if "Egress" in np["spec"]["policyTypes"] and selects(np["spec"]["podSelector"], labels)
        for rule in np["spec"].get("egress", [])
    ]


def allowed(rules: list[dict[str, Any]]) -> set[tuple[str, int, str]]:
    """The (peer, port, protocol) triples the rules allow; peer "*" is any address."""
    pairs = set()
    for rule in rules:
        assert rule.get("ports"), f"a rule without ports opens every port: {rule}"
        peers = [json.dumps(p, sort_keys=True) for p in rule.get("to", [])] or ["*"]
        for peer in peers:
            for port in rule["ports"]:
                pairs.add((peer, port["port"], port.get("protocol", "TCP")))
    return pairs


def ports(pairs: set[tuple[str, int, str]]) -> set[tuple[int, str]]:
    return {(port, proto) for _, port, proto in pairs}


def policed(rendered: dict[str, Rendered]) -> list[Rendered]:
    return [r for r in rendered.values() if r.kind("NetworkPolicy")]


def test_every_pod_is_denied_by_default(rendered: dict[str, Rendered]) -> None:
    assert len(policed(rendered)) >= 4
    for r in policed(rendered):
        deny = r.one("NetworkPolicy", "-default-deny")
        assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        assert not deny["spec"].get("egress") and not deny["spec"].get("ingress")
        for component, labels in pod_labels(r).items():
            assert selects(deny["spec"]["podSelector"], labels), (r.name, component)


def test_only_dns_may_go_anywhere_and_external_excludes_private_and_metadata(
    rendered: dict[str, Rendered],
) -> None:
    for r in policed(rendered):
        for component, labels in pod_labels(r).items():
            for peer, port, proto in allowed(egress_rules(r, labels)):
                if peer == "*":
                    assert (port, proto) in DNS, (r.name, component, port)
                    continue
                block = json.loads(peer).get("ipBlock")
                if not block:
                    continue
                cidr = ipaddress.ip_network(block["cidr"])
                excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                if METADATA in cidr:
                    assert any(METADATA in e for e in excepted), (r.name, component, peer, "IMDS")
                if cidr.prefixlen == 0:
                    for net in PRIVATE:
                        assert any(net.subnet_of(e) for e in excepted), (r.name, component, peer, net)


def expected_ports(r: Rendered) -> dict[str, set[tuple[int, str]]]:
    """What each component uses in this scenario: registry in-chart (by pod) or hosted (HTTPS)."""
    uri = env_of(inference_container(r))["MLFLOW_TRACKING_URI"]["value"]
    in_chart = uri.startswith("http://cali-housing-mlflow:")
    registry = {(5000, "TCP")} if in_chart else HTTPS
    expected = {
        "inference": DNS | DATABASE | registry,
        "trainer": DNS | DATABASE | registry,
        "monitor": DNS | DATABASE | registry | HTTPS | {(6443, "TCP"), (443, "TCP")},
        "migrate": DNS | DATABASE,
        "maintain": DNS | DATABASE | registry,
        "test": DNS | {(8000, "TCP")},
    }
    monitors = [d for d in r.kind("CronJob") if d["metadata"]["name"].endswith("-monitor")]
    if monitors and "PUSHGATEWAY_URL" in env_of(pod_spec(monitors[0])["containers"][0]):
        expected["monitor"] |= {(9091, "TCP")}
    mlflow = [d for d in r.kind("Deployment") if d["metadata"]["name"].endswith("-mlflow")]
    if mlflow:
        s3 = any(a.startswith("--artifacts-destination=s3://") for a in mlflow_container(r)["args"])
        expected["mlflow"] = DNS | DATABASE | (HTTPS if s3 else set())
        # Its schema upgrade: the dump and `mlflow db upgrade` reach the database only.
        expected["mlflow-upgrade"] = DNS | DATABASE
        # The users hook: the in-chart server only (by pod), when its clients log in to it.
        if (
            in_chart
            and r.kind("Job")
            and [j for j in r.kind("Job") if j["metadata"]["name"].endswith("-mlflow-users")]
        ):
            expected["mlflow-users"] = DNS | registry
    return expected


def test_each_component_reaches_only_what_it_uses(rendered: dict[str, Rendered]) -> None:
    for r in policed(rendered):
        labels = pod_labels(r)
        expected = expected_ports(r)
        assert set(labels) == set(expected), (r.name, set(labels) ^ set(expected))
        for component, want in expected.items():
            got = ports(allowed(egress_rules(r, labels[component])))
            assert got == want, (r.name, component, got ^ want)
        inference = ports(allowed(egress_rules(r, labels["inference"])))
        assert not {p for p, _ in inference} & {6443, 9091}, (
            "inference never calls the API or the Pushgateway"
        )


def test_in_cluster_peers_select_the_right_pods(rendered: dict[str, Rendered]) -> None:
    prod = rendered["prod"]
    labels = pod_labels(prod)
    for component in ("inference", "monitor", "trainer", "maintain"):
        to_mlflow = [
            json.loads(peer)
            for peer, port, _ in allowed(egress_rules(prod, labels[component]))
            if port == 5000
        ]
        assert to_mlflow and all(selects(p["podSelector"], labels["mlflow"]) for p in to_mlflow), component
    (to_inference,) = [
        json.loads(peer) for peer, port, _ in allowed(egress_rules(prod, labels["test"])) if port == 8000
    ]
    assert selects(to_inference["podSelector"], labels["inference"])
    pushgateway = [
        json.loads(peer) for peer, port, _ in allowed(egress_rules(prod, labels["monitor"])) if port == 9091
    ]
    assert pushgateway == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # The MLflow server takes calls from its clients only.
    ingress = prod.one("NetworkPolicy", "-mlflow")["spec"]["ingress"]
    peers = [p for rule in ingress for p in rule["from"]]
    for component in ("inference", "monitor", "trainer", "maintain"):
        assert any(selects(p["podSelector"], labels[component]) for p in peers), component
    for component in ("migrate", "test"):
        assert not any(selects(p["podSelector"], labels[component]) for p in peers), component


def test_an_egress_destination_without_peers_is_refused(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    empty = [*REQUIRED_SETS, "--set-json", "networkPolicy.egress.database.to=[]"]
    proc = helm_template(helm, empty)
    assert proc.returncode != 0
    assert "/networkPolicy/egress/database/to" in proc.stderr, proc.stderr
    # The template refuses it too, should the schema be skipped.
    proc = helm_template(helm, [*empty, "--skip-schema-validation"])
    assert proc.returncode != 0
    assert "networkPolicy.egress.database.to is empty" in proc.stderr, proc.stderr


# --- 5. The monitor's pushed series carry {namespace, release} ------------------------------------


def test_monitor_knows_its_grouping_key(rendered: dict[str, Rendered]) -> None:
    for name in ("default", "staging", "prod"):
        (c,) = pod_spec(rendered[name].one("CronJob", "-monitor"))["containers"]
        env = env_of(c)
        assert env["HOUSING_RELEASE"]["value"] == "cali-housing", name
        assert env["HOUSING_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", name


def test_monitor_alerts_only_where_the_monitor_pushes(rendered: dict[str, Rendered]) -> None:
    # Without a Pushgateway no monitor series ever exists: an absent() alert would fire forever.
    hosted = rendered["ci/hosted-registry-s3-values.yaml"]
    assert not env_of(pod_spec(hosted.one("CronJob", "-monitor"))["containers"][0]).get("PUSHGATEWAY_URL")
    (rule,) = hosted.kind("PrometheusRule")
    assert "housing-monitor" not in json.dumps(rule["spec"])
    assert "HousingPredictionSpoolFilling" in json.dumps(rule["spec"])
    (prod_rule,) = rendered["prod"].kind("PrometheusRule")
    assert "HousingMonitorMetricsAbsent" in json.dumps(prod_rule["spec"])


# --- 6a. The release fits the node Terraform provisions -------------------------------------------

# vCPU and memory (GiB) of EC2 instance types, from AWS's instance type pages
# (aws.amazon.com/ec2/instance-types/t3/ and /m6i/).
INSTANCE_TYPES = {
    "t3.medium": (2, 4),
    "t3.large": (2, 8),
    "t3.xlarge": (4, 16),
    "t3.2xlarge": (8, 32),
    "m6i.large": (2, 8),
    "m6i.xlarge": (4, 16),
}
# What k3s (server, containerd, CoreDNS, local-path, metrics-server) and Argo CD keep for themselves
# on the node: an estimate, not a measurement.
SYSTEM_RESERVED = (0.5, 1.5 * GIB)


def prod_instance_type() -> str:
    text = (REPO / "terraform" / "envs" / "prod" / "variables.tf").read_text()
    block = re.search(r'variable "instance_type" \{(.*?)\n\}', text, re.S)
    assert block, "terraform/envs/prod/variables.tf declares no instance_type"
    default = re.search(r'default\s*=\s*"([^"]+)"', block.group(1))
    assert default, "instance_type has no default"
    return default.group(1)


def requests(spec: dict[str, Any]) -> tuple[float, float]:
    cpu = sum(quantity(c["resources"]["requests"]["cpu"]) for c in spec["containers"])
    memory = sum(quantity(c["resources"]["requests"]["memory"]) for c in spec["containers"])
    return cpu, memory


def release_requests(release: Rendered) -> dict[str, tuple[float, float]]:
    """CPU and memory requests of a release at its HPA maximum with a trainer Job running."""
    hpa = release.one("HorizontalPodAutoscaler", "-inference")
    inference = requests(pod_spec(release.one("Deployment", "-inference")))
    parts = {
        "inference at the HPA maximum": (
            hpa["spec"]["maxReplicas"] * inference[0],
            hpa["spec"]["maxReplicas"] * inference[1],
        ),
        "monitor": requests(pod_spec(release.one("CronJob", "-monitor"))),
        # The maintenance run may overlap a monitor run and a trainer Job.
        "maintenance": requests(pod_spec(release.one("CronJob", "-maintain"))),
        "trainer Job": requests(pod_spec(trainer_job(release))),
    }
    mlflow = [d for d in release.kind("Deployment") if d["metadata"]["name"].endswith("-mlflow")]
    if mlflow:
        parts["MLflow server"] = requests(pod_spec(mlflow[0]))
    return {f"{release.name} {k}": v for k, v in parts.items()}


def test_staging_and_prod_fit_the_node_they_share(rendered: dict[str, Rendered]) -> None:
    """Both Argo CD Applications sync onto the one k3s node Terraform provisions."""
    instance = prod_instance_type()
    assert instance in INSTANCE_TYPES, f"add {instance} to INSTANCE_TYPES"
    vcpu, gib = INSTANCE_TYPES[instance]
    allocatable = (vcpu - SYSTEM_RESERVED[0], gib * GIB - SYSTEM_RESERVED[1])
    prod = release_requests(rendered["prod"])
    parts = {**prod, **release_requests(rendered["staging"])}
    cpu = sum(p[0] for p in parts.values())
    memory = sum(p[1] for p in parts.values())
    detail = ", ".join(f"{k} {v[0]:.2f} CPU / {v[1] / GIB:.2f} GiB" for k, v in parts.items())
    assert cpu <= allocatable[0], f"{cpu:.2f} CPU > {allocatable[0]} allocatable on {instance}: {detail}"
    assert memory <= allocatable[1], (
        f"{memory / GIB:.2f} GiB > {allocatable[1] / GIB} on {instance}: {detail}"
    )
    prod_cpu, prod_memory = (sum(p[i] for p in prod.values()) for i in (0, 1))
    assert (prod_cpu, prod_memory / GIB) == pytest.approx((1.5, 4.25)), "keep values-prod.yaml's figures true"
