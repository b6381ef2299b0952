"""The migration hook's Secret check: a missing Secret or key fails at once, naming the kubectl command
that fixes it, and nothing is migrated or started. The folder stands in for the kubelet's mount of an
optional Secret volume (keys as files; an absent Secret is an empty folder, with the kubelet's hidden
``..data`` entries); the command runs as the real ``housing`` process (~3 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.required_secret import SecretRef, missing_keys, problem

REF = SecretRef("cali-housing-prod", "cali-housing-secrets")
KEYS = ["DATABASE_URL", "FEEDBACK_TOKEN", "MLFLOW_BACKEND_STORE_URI"]


def _mount(folder: Path, **keys: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "..data").mkdir()
    for key, value in keys.items():
        (folder / key).write_text(value)
    return folder


def test_an_absent_secret_is_named_with_the_create_command(tmp_path: Path) -> None:
    wrong = problem(REF, _mount(tmp_path / "secret"), KEYS)
    assert wrong is not None
    assert "the Secret cali-housing-secrets in namespace cali-housing-prod does not exist" in wrong
    assert (
        "kubectl -n cali-housing-prod create secret generic cali-housing-secrets"
        " --from-literal=DATABASE_URL='postgresql://user:pass@host:5432/housing'"
        ' --from-literal=FEEDBACK_TOKEN="$(openssl rand -hex 32)"'
        " --from-literal=MLFLOW_BACKEND_STORE_URI='postgresql+psycopg://user:pass@host:5432/mlflow'"
    ) in wrong


def test_missing_and_empty_keys_are_named_with_the_patch_command(tmp_path: Path) -> None:
    folder = _mount(tmp_path / "secret", DATABASE_URL="postgresql://x", FEEDBACK_TOKEN="  \n")
    assert missing_keys(folder, KEYS) == ["FEEDBACK_TOKEN", "MLFLOW_BACKEND_STORE_URI"]
    wrong = problem(REF, folder, KEYS)
    assert wrong is not None
    assert "lacks or holds empty FEEDBACK_TOKEN, MLFLOW_BACKEND_STORE_URI" in wrong
    assert (
        "kubectl -n cali-housing-prod patch secret cali-housing-secrets --type merge"
        ' -p \'{"stringData":{"FEEDBACK_TOKEN":"...","MLFLOW_BACKEND_STORE_URI":"..."}}\''
    ) in wrong


def test_a_complete_secret_passes(tmp_path: Path) -> None:
    folder = _mount(tmp_path / "secret", **dict.fromkeys(KEYS, "value"))
    assert problem(REF, folder, KEYS) is None


@pytest.mark.parametrize("text", ["name-only", "/name", "ns/", "a/b/c"])
def test_a_malformed_reference_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        SecretRef.parse(text)


def test_the_migrate_command_refuses_before_touching_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret = _mount(tmp_path / "secret", DATABASE_URL="postgresql://127.0.0.1:1/nowhere")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"HOUSING_HOME": str(home)}
    env["HOUSING_SECRET_KEYS"] = "DATABASE_URL FEEDBACK_TOKEN"  # as the chart passes them
    command = [
        str(Path(sys.executable).with_name("housing")),
        *("db", "migrate", "--secret=cali-housing-prod/cali-housing-secrets", f"--secret-dir={secret}"),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "lacks or holds empty FEEDBACK_TOKEN" in proc.stderr
    assert "kubectl -n cali-housing-prod patch secret cali-housing-secrets" in proc.stderr
    assert not home.exists()  # no embedded Postgres started, nothing written
