"""Production safety of the chart: feedback needs a token, the spool outlives its pod, the shutdown
fits the grace period, egress by destination, no secret on a command line, the release fits the node."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from .helpers import REQUIRED_SETS, Rendered, helm_notes, helm_template
from .test_chart import env_of, pod_spec

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
    return Rendered("custom", None, [d for d in yaml.safe_load_all(proc.stdout) if d])  # type: ignore[arg-type]


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
        assert pvc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false", r.name
        # Room for every server's spool at once, the surge pod of a rollout included.
        size = quantity(pvc["spec"]["resources"]["requests"]["storage"])
        assert size >= max_inference_pods(r) * max_bytes, r.name
        # The non-root user can write it: the pod's fsGroup owns the volume.
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
