"""The MLflow server's own image: hadolint clean, built from a hashed lock pinned apart from the app's,
tagged by its content, named by the chart, built by images.yml. Runtime ~0.3 s."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import yaml

from .helpers import REPO, Rendered, run

DOCKERFILE = REPO / "services" / "mlflow" / "Dockerfile"
LOCK = REPO / "requirements" / "mlflow.txt"
CHART = REPO / "charts" / "cali-housing"


def pins(text: str) -> dict[str, str]:
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", text, re.M)}


def uv_lock_versions() -> dict[str, str]:
    text = (REPO / "uv.lock").read_text()
    return dict(re.findall(r'^\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text, re.M))


def image_tag() -> str:
    digest = hashlib.sha256(LOCK.read_bytes() + DOCKERFILE.read_bytes()).hexdigest()[:12]
    return f"{pins(LOCK.read_text())['mlflow']}-{digest}"


def test_hadolint(tool: Callable[[str], str]) -> None:
    proc = run([tool("hadolint"), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_the_hashed_lock_onto_a_slim_base_as_non_root() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2 and all(
        re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", f) for f in froms
    )
    runs = [line for line in lines if line.startswith("RUN ")]
    assert "--require-hashes --no-deps -r /tmp/mlflow.txt" in runs[0]
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert "USER 10001:10001" in final and not any("pip install" in line for line in final)
    assert 'ENTRYPOINT ["mlflow"]' in final
    assert "!requirements/mlflow.txt" in (REPO / ".dockerignore").read_text().splitlines()


def test_lock_has_hashes_and_the_clients_mlflow() -> None:
    """The server runs the MLflow the clients (uv.lock) were tested with: same mlflow, same psycopg."""
    text = LOCK.read_text()
    locked = pins(text)
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in b for b in blocks if "==" in b), "every pin needs its hashes"
    assert {"mlflow", "psycopg", "boto3", "flask-wtf"} <= set(locked), "server, Postgres, S3, basic-auth"
    app = uv_lock_versions()
    for package in ("mlflow", "psycopg"):
        assert locked[package] == app[package], (
            f"{package} {locked[package]} in requirements/mlflow.txt, {app[package]} in uv.lock: "
            "edit requirements/mlflow.in, run `make lock-mlflow`, and move the app in the same step"
        )


def test_chart_names_the_image_of_this_lock(rendered: dict[str, Rendered]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["mlflow"]["server"]["image"]
    assert values["tag"] == image_tag(), (
        f"mlflow.server.image.tag is {values['tag']}, the lock and Dockerfile build {image_tag()}: "
        "set it to what `make mlflow-image-tag` prints"
    )
    proc = run(["make", "-s", "mlflow-image-tag"])
    assert proc.stdout.strip() == image_tag(), proc.stderr
    for name in ("staging", "prod"):
        (server,) = [
            d for d in rendered[name].kind("Deployment") if d["metadata"]["name"].endswith("-mlflow")
        ]
        (container,) = server["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"ghcr.io/{values['repository']}:{image_tag()}", name
        assert "trainer" not in container["image"]


def test_images_workflow_builds_it_with_that_tag() -> None:
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "images.yml").read_text())
    job = wf["jobs"]["mlflow"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    build = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert build["with"]["file"] == "services/mlflow/Dockerfile"
    assert build["with"]["tags"].endswith(":${{ steps.image.outputs.tag }}")
    assert "make -s mlflow-image-tag" in next(s for s in job["steps"] if s.get("id") == "image")["run"]
    # A change of the lock builds it (the `changes` job diffs the images' inputs).
    assert job["needs"] == "changes"
    assert "requirements/mlflow.txt" in " ".join(s.get("run", "") for s in wf["jobs"]["changes"]["steps"])


def test_upgrade_runs_in_the_wave_before_the_server_and_backs_up_first(rendered: dict[str, Rendered]) -> None:
    for name in ("staging", "prod"):
        r = rendered[name]
        (job,) = [j for j in r.kind("Job") if "-mlflow-upgrade-" in j["metadata"]["name"]]
        assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
        assert "ttlSecondsAfterFinished" not in job["spec"], "Argo CD would re-create it and run it again"
        assert not any(k.startswith("helm.sh/hook") for k in job["metadata"]["annotations"])
        spec = job["spec"]["template"]["spec"]
        (backup,) = spec["initContainers"]
        (upgrade,) = spec["containers"]
        assert backup["command"] == ["sh", "/scripts/mlflow-backup.sh"]
        assert upgrade["command"][-1] == 'exec mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"'
        server = r.one("Deployment", "-mlflow")
        assert upgrade["image"] == server["spec"]["template"]["spec"]["containers"][0]["image"]
        assert server["spec"]["strategy"]["type"] == "Recreate"
        assert "argocd.argoproj.io/sync-wave" not in server["metadata"].get("annotations", {})
        claim = r.one("PersistentVolumeClaim", "-mlflow-upgrade-backups")
        assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-2"
        assert claim["spec"]["storageClassName"] == "local-path-stable", "on the snapshotted data volume"
        script = r.one("ConfigMap", "-mlflow-upgrade")["data"]["mlflow-backup.sh"]
        assert script.strip() == (CHART / "files" / "mlflow-backup.sh").read_text().strip()
