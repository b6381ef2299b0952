"""The three Dockerfiles: hadolint clean, multi-stage, slim pinned base, non-root, one dependency group."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import yaml

from .helpers import REPO, run

SERVICES = ["inference", "monitor", "trainer"]
# A tag for people, a digest for the builder: the same bytes in every build until Dependabot's pull
# request moves the digest (.github/dependabot.yml).
BASE_IMAGE = r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}"


def instructions(service: str) -> list[tuple[str, str]]:
    text = (REPO / "services" / service / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint(tool: Callable[[str], str], service: str) -> None:
    proc = run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", f"services/{service}/Dockerfile"]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_shape(service: str) -> None:
    ins = instructions(service)
    froms = [arg for op, arg in ins if op == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    for base in froms:
        image = base.split()[0]
        assert re.fullmatch(BASE_IMAGE, image), f"{image}: pin the base by digest (tag@sha256:...)"
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM") :]
    runs = " ".join(arg for op, arg in final if op == "RUN")
    assert not re.search(r"\b(gcc|build-essential|apt-get install|pip install)\b", runs), (
        "no build work in the final stage"
    )
    assert ("USER", "10001:10001") in final
    assert any(op == "COPY" and "--from=build /opt/venv" in arg for op, arg in final)
    build_runs = [arg for op, arg in ins[: len(ins) - len(final)] if op == "RUN"]
    # The installer itself hash-checked, then the service's group from the lock, never resolved anew.
    assert build_runs[0] == "pip install --no-cache-dir --require-hashes -r requirements/uv.txt"
    assert build_runs[1:] == [
        f"uv sync --locked --no-install-project --extra {service}",
        f"uv sync --locked --no-editable --extra {service}",
    ]
    env = " ".join(arg for op, arg in final if op == "ENV")
    assert "HOUSING_HOME=/var/lib/housing" in env
    assert ("OMP_NUM_THREADS=1" in env) == (service == "inference")
    entry = [arg for op, arg in final if op in {"ENTRYPOINT", "CMD"}]
    assert entry[0] == '["housing"]'


def test_every_image_builds_on_the_same_pinned_base() -> None:
    """One base for the four images (the MLflow server's too), so a security rebuild moves them together,
    and Dependabot watches every Dockerfile's folder for a newer digest."""
    bases = {
        line.split()[1]
        for path in sorted((REPO / "services").glob("*/Dockerfile"))
        for line in path.read_text().splitlines()
        if line.startswith("FROM ")
    }
    assert len(bases) == 1 and re.fullmatch(BASE_IMAGE, bases.pop())
    dependabot = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    watched = {
        entry["directory"] for entry in dependabot["updates"] if entry["package-ecosystem"] == "docker"
    }
    assert watched == {f"/services/{path.parent.name}" for path in (REPO / "services").glob("*/Dockerfile")}


def test_dockerignore_sends_only_the_build_inputs() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert lines[lines.index("*")] == "*", "deny by default"
    for needed in ("!pyproject.toml", "!uv.lock", "!requirements/uv.txt", "!README.md", "!services/"):
        assert needed in lines
