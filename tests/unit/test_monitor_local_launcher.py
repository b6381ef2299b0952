"""The local launcher: one trainer at a time, its exit code kept for the next run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from services.common.vocabulary import Action
from services.monitor.launchers.local import (
    LocalLauncher,
    last_trainer_exit,
    trainer_command,
    trainer_running,
)


def _wait_done(home: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while trainer_running(home):
        assert time.monotonic() < deadline, "the child did not finish"
        time.sleep(0.05)


def test_a_second_launch_while_one_runs_is_a_no_op(tmp_path: Path) -> None:
    marker = tmp_path / "runs.txt"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(1.5)"]
    launcher = LocalLauncher(tmp_path, command)
    first = launcher.launch(1)
    second = LocalLauncher(tmp_path, command).launch(2)
    assert first.action == Action.TRAINER_LAUNCHED
    assert second.action == Action.TRAINER_ALREADY_RUNNING
    assert trainer_running(tmp_path)
    _wait_done(tmp_path)
    assert marker.read_text() == "x"
    assert last_trainer_exit(tmp_path)[0] == 0
    assert Path(first.info["log"]).parent == tmp_path / "logs"
    assert launcher.launch(3).action == Action.TRAINER_LAUNCHED  # finished: the next launch goes ahead
    _wait_done(tmp_path)
    assert marker.read_text() == "xx"


def test_a_failed_trainer_is_reported_by_the_next_launch(tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)"])
    launcher.launch(1)
    _wait_done(tmp_path)
    assert last_trainer_exit(tmp_path)[0] == 3
    result = LocalLauncher(tmp_path, [sys.executable, "-c", "pass"]).launch(2)
    assert result.action == Action.TRAINER_LAUNCHED
    assert "previous trainer failed (exit 3" in result.detail
    _wait_done(tmp_path)


def test_a_stale_lock_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "trainer.lock").write_text('{"pid": 999999999, "started": "1"}')
    assert not trainer_running(tmp_path)


def test_the_trainer_command_is_housing_train() -> None:
    command = trainer_command()
    assert command[-2:] == ["train", "--json"]
