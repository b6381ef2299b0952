"""The monitor's command line imports what a run needs when it needs it: a regression here costs every
CronJob run seconds (Evidently ~3.4 s, scikit-learn ~1.1 s, the Kubernetes client ~1.0 s to import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("evidently", "sklearn", "kubernetes", "scipy.stats")  # scipy.stats: ~0.7 s


def _imported(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", ["services.cli", "services.monitor.cli"])
def test_the_command_line_imports_nothing_heavy(module: str) -> None:
    heavy = _imported(f"import {module}") & {*HEAVY, "mlflow", "pandas", "treelite"}
    assert not heavy, f"{module} imports {sorted(heavy)} for every command"


def test_a_monitor_run_module_leaves_evidently_and_scikit_learn_to_the_runs_that_need_them() -> None:
    heavy = _imported("import services.monitor.run") & set(HEAVY)
    assert not heavy, f"services.monitor.run imports {sorted(heavy)}"
