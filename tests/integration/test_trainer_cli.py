"""`housing` trainer commands as a user runs them: one clear line, a non-zero exit, nothing moved.

Each test runs the real console script against a real embedded Postgres and a real MLflow store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.common.dataset import Dataset
from services.common.registry import current_aliases
from services.common.vocabulary import Role
from services.trainer.model import fit_model
from tests.conftest import Registry, session_keys
from tests.integration.test_trainer import register

HOUSING = str(Path(sys.executable).with_name("housing"))


def housing(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOUSING, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(database_url: str, champion_registry: Registry, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path),
    }


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_promote_unknown_version(env: dict[str, str], champion_registry: Registry) -> None:
    result = housing("promote", "42", env=env)
    assert result.returncode == 1
    assert last_line(result) == "error: model version 42 of cali-housing does not exist; known versions: 1"
    assert current_aliases(champion_registry.client)[Role.CHAMPION] == 1


def test_rollback_without_previous(env: dict[str, str], champion_registry: Registry) -> None:
    result = housing("rollback", env=env)
    assert result.returncode == 1
    assert "no previous version to roll back to" in last_line(result)
    assert "housing promote VERSION" in last_line(result)
    assert current_aliases(champion_registry.client)[Role.PREVIOUS] is None


def test_force_needs_a_reason(env: dict[str, str]) -> None:
    result = housing("promote", "1", "--force", env=env)
    assert result.returncode == 2
    assert "--force needs --reason" in result.stderr


def test_models_lists_the_champion(env: dict[str, str]) -> None:
    result = housing("models", env=env)
    assert result.returncode == 0, result.stderr
    assert "champion" in result.stdout and "passed" in result.stdout


def test_database_unreachable(env: dict[str, str]) -> None:
    result = housing("rollback", env={**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 1
    assert last_line(result).startswith("error: cannot connect to Postgres")
    assert "check DATABASE_URL" in last_line(result)


def test_registry_unreachable(env: dict[str, str]) -> None:
    result = housing("models", env={**env, "MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}, timeout=300)
    assert result.returncode == 1
    assert "check MLFLOW_TRACKING_URI" in last_line(result)


def test_bad_setting_names_the_variable(env: dict[str, str]) -> None:
    result = housing("models", env={**env, "DATABASE_URL": "mysql://x"})
    assert result.returncode == 1
    assert "DATABASE_URL" in last_line(result) and "postgresql://" in last_line(result)


def test_missing_data_names_the_fix(env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = housing("train", env={**env, "SCIKIT_LEARN_DATA": str(empty)})
    assert result.returncode == 1
    assert "SCIKIT_LEARN_DATA" in last_line(result)


def test_promote_and_models_show_the_gates_evidence(
    env: dict[str, str], champion_registry: Registry, dataset: Dataset
) -> None:
    """An A/A candidate (the champion's recipe refitted on a resample) is refused, and says why in figures."""
    env = {**env, "COLUMNS": "400"}  # rich wraps at 80 columns without a terminal
    rows = np.random.default_rng(3).integers(0, len(dataset.y_train), len(dataset.y_train))
    model = fit_model(dataset.x_train[rows], dataset.y_train[rows])
    version = register(champion_registry, dataset, model, (dataset.x_train[rows], dataset.y_train[rows]))
    result = housing("promote", str(version), "--json", env=env)
    assert result.returncode == 1, result.stderr
    decision = json.loads(result.stdout)
    holdout = decision["evidence"]["holdout"]
    assert holdout["test"] == "superiority" and holdout["rows"] == len(dataset.y_holdout)
    assert holdout["upper"] >= -holdout["margin"] and not holdout["passed"]
    assert "holdout, 4128 rows: candidate - champion MAE" in result.stderr

    listed = housing("models", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    versions = {row["version"]: row for row in json.loads(listed.stdout)["versions"]}
    assert versions[version]["gate"] == "rejected"
    assert versions[version]["evidence"]["holdout"] == holdout
    assert versions[1]["evidence"] == {}  # the first champion had nothing to be compared with
    assert versions[1]["signed_by"] == session_keys().ids[0]
    table = housing("models", env=env)
    assert f"holdout n={len(dataset.y_holdout)}: Δ" in table.stdout
