"""yamllint over the repository and shellcheck over the CI scripts."""

from __future__ import annotations

from collections.abc import Callable

from .helpers import REPO, run


def test_yamllint(tool: Callable[[str], str]) -> None:
    proc = run([tool("yamllint"), "-s", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_ci_scripts(tool: Callable[[str], str]) -> None:
    scripts = sorted(str(p) for p in (REPO / "ci").glob("*.sh"))
    assert len(scripts) >= 3
    proc = run([tool("shellcheck"), *scripts])
    assert proc.returncode == 0, proc.stdout + proc.stderr
