"""The README stays true: its two commands, CI's test command; docs/configuration.md holds every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.common.mlflow_users import MlflowUsersSettings
from services.common.settings import CommonSettings, MaintenanceSettings
from services.inference.settings import InferenceSettings
from services.monitor.settings import MonitorSettings
from services.trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def first_block() -> list[str]:
    block = README.split("```", 2)[1]
    return [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]


def test_the_first_two_commands_are_demo_then_test() -> None:
    assert first_block() == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert commands == [first_block()[1]]


@pytest.mark.parametrize(
    "settings",
    [
        CommonSettings,
        MaintenanceSettings,
        TrainerSettings,
        InferenceSettings,
        MonitorSettings,
        MlflowUsersSettings,
    ],
)
def test_every_setting_is_in_the_configuration_table(settings: type[BaseSettings]) -> None:
    missing = [name.upper() for name in settings.model_fields if f"| `{name.upper()}` |" not in CONFIGURATION]
    assert missing == []
