"""The dependency lock: one uv.lock for the project, installed by the Makefile and the three images.

Two builds a month apart must run the same code, so nothing installs from version ranges: a stale lock
fails here (and `uv sync --locked` refuses it in `make` and in every image build) with the command that
refreshes it. `uv lock --check --offline` compares the lock with pyproject.toml without the network.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from .helpers import REPO, missing, run

UV_REQUIREMENT = REPO / "requirements" / "uv.txt"


def uv() -> str:
    """The uv the Makefile installs beside the venv's Python (requirements/uv.txt)."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        missing("uv not found beside the venv's Python: run `make .venv/.installed` (it installs uv first)")
    return found


def test_lock_is_current_with_pyproject() -> None:
    proc = run([uv(), "lock", "--check", "--offline"])
    assert proc.returncode == 0, (
        "uv.lock is stale against pyproject.toml: run `make lock` and commit uv.lock\n" + proc.stderr
    )


def test_a_changed_dependency_makes_the_lock_stale(tmp_path: Path) -> None:
    """The check above can fail: a range changed in pyproject.toml and not locked is refused."""
    shutil.copy(REPO / "uv.lock", tmp_path / "uv.lock")
    pyproject = (REPO / "pyproject.toml").read_text()
    changed = re.sub(r'"numpy>=[^"]*"', '"numpy>=2.0,<2.1"', pyproject, count=1)
    assert changed != pyproject
    (tmp_path / "pyproject.toml").write_text(changed)
    proc = run([uv(), "lock", "--check", "--offline", "--project", str(tmp_path)])
    # Offline, uv tries to resolve the changed range and cannot: refused either way, as it should be.
    assert proc.returncode != 0, proc.stdout + proc.stderr


def test_the_installer_is_pinned_with_hashes() -> None:
    """requirements/uv.txt: one exact version and a hash per Linux wheel, so `--require-hashes` holds."""
    text = UV_REQUIREMENT.read_text()
    pins = re.findall(r"^uv==(\d+\.\d+\.\d+)", text, flags=re.MULTILINE)
    assert len(pins) == 1
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 2
    proc = run([uv(), "--version"])
    assert proc.stdout.split()[1] == pins[0], (
        "the venv's uv is not the pinned one: run `make .venv/.installed`"
    )
