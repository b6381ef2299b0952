"""The local launcher: ``housing train`` as a detached child process, one at a time.

``HOUSING_HOME/trainer.lock`` holds the child's pid (and its start time, so a recycled pid is not
mistaken for it); a launch while that process lives is a no-op. The check and the launch happen
under an ``flock`` so two launchers at once start one trainer. The child's output goes to
``HOUSING_HOME/logs/trainer-<time>.log`` and its exit code to the ``.exit`` file beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.vocabulary import Action
from services.monitor.launchers import LaunchResult, StalledTrainer, TrainerOutcome

LOCK_FILE = "trainer.lock"


def trainer_command() -> list[str]:
    """``housing train --json`` with the same Python: the ``housing`` script beside it, else ``-c``."""
    script = Path(sys.executable).with_name("housing")
    if script.exists():
        return [str(script), "train", "--json"]
    return [sys.executable, "-c", "from services.cli import main; main()", "train", "--json"]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if fields[0] != "Z" else None  # field 22 of stat; a zombie has finished


def _alive(pid: int, started: str | None) -> bool:
    try:  # reap our own finished child, if it is one (a zombie still answers kill 0)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid
        return started is None
    if Path("/proc").is_dir():
        now = _start_time(pid)
        return now is not None and (started is None or now == started)
    return True


def read_lock(home: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((home / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def trainer_running(home: Path) -> bool:
    """True while a trainer started by the local launcher under ``home`` is still running."""
    lock = read_lock(home)
    return bool(lock and isinstance(lock.get("pid"), int) and _alive(lock["pid"], lock.get("started")))


def last_trainer_exit(home: Path) -> tuple[int | None, str | None]:
    """(exit code or None if unknown/running, log path) of the last trainer the local launcher started."""
    lock = read_lock(home)
    if not lock or "log" not in lock:
        return None, None
    exit_file = Path(lock["log"]).with_suffix(".exit")
    try:
        return int(exit_file.read_text(encoding="utf-8").strip()), lock["log"]
    except (OSError, ValueError):
        return None, lock["log"]


class LocalLauncher:
    """Runs the trainer (by default ``housing train --json``) as a detached child of this process."""

    def __init__(
        self, home: Path, command: Sequence[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.home = home.resolve()
        self.command = list(command) if command else trainer_command()
        self.env = env

    def stalled(self) -> list[StalledTrainer]:
        """None: a local child process either runs or has exited."""
        return []

    def last_finished(self) -> TrainerOutcome | None:
        """The last trainer this launcher started, once it has exited."""
        code, log_path = last_trainer_exit(self.home)
        if code is None or log_path is None:
            return None
        reason = "exited 0" if code == 0 else f"exited {code}; its log: {log_path}"
        return TrainerOutcome(log_path, code != 0, reason)

    def launch(self, report_id: int) -> LaunchResult:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / f"{LOCK_FILE}.guard").open("a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                return self._launch_locked(report_id)
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _launch_locked(self, report_id: int) -> LaunchResult:
        lock = read_lock(self.home)
        if lock and trainer_running(self.home):
            return LaunchResult(
                Action.TRAINER_ALREADY_RUNNING,
                f"a trainer (pid {lock['pid']}) is still running; log: {lock.get('log')}",
                {"pid": lock["pid"], "log": lock.get("log")},
            )
        previous_exit, previous_log = last_trainer_exit(self.home)
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        log_path = logs / f"trainer-{stamp}.log"
        exit_path = log_path.with_suffix(".exit")
        # sh records the trainer's exit code, so the next run can say whether it failed.
        script = f"{shlex.join(self.command)}; echo $? > {shlex.quote(str(exit_path))}"
        env = dict(os.environ if self.env is None else self.env)
        env["HOUSING_HOME"] = str(self.home)
        env["HOUSING_DRIFT_REPORT"] = str(report_id)
        try:
            with log_path.open("ab") as log:
                child = subprocess.Popen(
                    ["/bin/sh", "-c", script],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # outlives this run, and a Ctrl-C meant for the monitor
                )
        except OSError as error:
            return LaunchResult(
                Action.LAUNCH_FAILED, f"cannot start the trainer ({error})", {"command": self.command}
            )
        record = {
            "pid": child.pid,
            "started": _start_time(child.pid),
            "log": str(log_path),
            "report_id": report_id,
            "command": self.command,
            "launched_at": stamp,
        }
        (self.home / LOCK_FILE).write_text(json.dumps(record), encoding="utf-8")
        detail = f"trainer started (pid {child.pid}); log: {log_path}"
        if previous_exit not in (None, 0):
            detail += f"; the previous trainer failed (exit {previous_exit}, log: {previous_log})"
        info = {**record, "previous_trainer": {"exit_code": previous_exit, "log": previous_log}}
        return LaunchResult(Action.TRAINER_LAUNCHED, detail, info)
