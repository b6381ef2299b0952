"""Fixtures for the deployment checks: tool lookup and the chart rendered once per scenario."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .helpers import Rendered, find_tool, helm_template, scenario_args


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """`tool("helm")` returns the helm binary or skips/fails as `find_tool` does."""
    return find_tool


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """The chart rendered for every scenario (fails if any scenario does not render)."""
    helm = find_tool("helm")
    out_dir = tmp_path_factory.mktemp("rendered")
    result: dict[str, Rendered] = {}
    for name, args in scenario_args().items():
        proc = helm_template(helm, args)
        assert proc.returncode == 0, f"helm template ({name}) failed:\n{proc.stderr}"
        path = out_dir / (name.replace("/", "_") + ".yaml")
        path.write_text(proc.stdout)
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        result[name] = Rendered(name, path, docs)
    return result


@pytest.fixture(scope="session")
def rendered_dir(rendered: dict[str, Rendered]) -> Path:
    """The folder holding every rendered scenario."""
    return next(iter(rendered.values())).path.parent
