"""The monitor's command line imports what a run needs when it needs it: a regression here costs every
CronJob run seconds (Evidently ~3.4 s, scikit-learn ~1.1 s, the Kubernetes client ~0.3-0.4 s, numba ~0.25 s
to import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("evidently", "sklearn", "kubernetes", "scipy.stats")  # scipy.stats: ~0.7 s


def _imported(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", ["services.cli", "services.monitor.cli"])
def test_the_command_line_imports_nothing_heavy(module: str) -> None:
    heavy = _imported(f"import {module}") & {*HEAVY, "mlflow", "pandas", "treelite", "numba"}
    assert not heavy, f"{module} imports {sorted(heavy)} for every command"


def test_a_monitor_run_module_leaves_evidently_and_scikit_learn_to_the_runs_that_need_them() -> None:
    heavy = _imported("import services.monitor.run") & set(HEAVY)
    assert not heavy, f"services.monitor.run imports {sorted(heavy)}"


def test_the_estimate_from_a_compiled_error_model_leaves_scikit_learn_out(tmp_path: Path) -> None:
    """A warm run estimates from the trees the trainer compiled: unpickling the regressor costs ~1.1 s."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from services.common import compiled

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(500, 9))
    regressor = HistGradientBoostingRegressor(max_iter=10).fit(x, x[:, 0])
    path = compiled.save(compiled.compile_pipeline(regressor), tmp_path / "model.tl")
    statement = (
        "import numpy as np\n"
        "from services.common import compiled\n"
        "from services.common.error_model import CompiledErrorModel\n"
        f"model = CompiledErrorModel(compiled.load(__import__('pathlib').Path({str(path)!r})))\n"
        "assert model.estimate_mae(np.ones((4, 8)), np.ones(4)) is not None"
    )
    heavy = _imported(statement) & set(HEAVY)
    assert not heavy, f"estimating from the compiled error model imports {sorted(heavy)}"
