"""The child processes of a local run: started with their output in log files, and all stopped at the end.

Each child gets its own session (process group), so a Ctrl-C in the terminal reaches only the demo, which
then stops its children in order: SIGTERM to the child's group, SIGKILL after a grace period.

Example::

    with Children(logs) as children:
        server = children.start("serve", housing_command("serve", "--port", "8000"), env=env)
        result = children.run("monitor", housing_command("monitor", "--json"), env=env, timeout=120)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


def housing_command(*args: str) -> list[str]:
    """The argv that runs ``housing ARGS`` with this interpreter (the venv's entry script when present)."""
    script = Path(sys.executable).with_name("housing")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from services.cli import main; main()", *args]


@dataclass(frozen=True)
class Finished:
    """A command that ran to its end: exit code, stdout, and where its stderr went."""

    returncode: int
    stdout: str
    log: Path
    seconds: float


class ChildFailed(RuntimeError):
    """A child process exited with an error, or did not finish in time."""


class Children:
    """Starts processes with logs under ``logs`` and stops every one of them on :meth:`stop_all`."""

    def __init__(self, logs: Path, *, grace_seconds: float = 15.0) -> None:
        self.logs = logs
        self.grace_seconds = grace_seconds
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start a long-running child; stdout and stderr go to ``logs/NAME.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
            )
        self._running.append((name, process))
        return process

    def run(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> Finished:
        """Run a command to its end; returns its stdout (stderr goes to ``logs/NAME.log``).

        Raises:
            ChildFailed: when it runs longer than ``timeout`` (it is stopped first).
        """
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        started = time.monotonic()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=log, env=dict(env), start_new_session=True
            )
            self._running.append((name, process))
            try:
                stdout, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as error:
                self.stop(process)
                raise ChildFailed(
                    f"`{' '.join(argv[-3:])}` ran longer than {timeout:.0f} s (log: {log_path})"
                ) from error
            finally:
                self._forget(process)
        return Finished(
            process.returncode, stdout.decode("utf-8", "replace"), log_path, time.monotonic() - started
        )

    def stop(self, process: subprocess.Popen[bytes]) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after the grace period; returns its exit code."""
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(self.grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(5)
        self._forget(process)
        return process.returncode

    def stop_all(self) -> list[str]:
        """Stop every child still running, newest first; returns the names of those that were running."""
        stopped = []
        for name, process in reversed(list(self._running)):
            if process.poll() is None:
                stopped.append(name)
            self.stop(process)
        return stopped

    def _forget(self, process: subprocess.Popen[bytes]) -> None:
        self._running = [(name, p) for name, p in self._running if p is not process]

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop_all()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the child leads its own session: its group id is its pid


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    alive: subprocess.Popen[bytes] | None = None,
) -> T:
    """Poll ``check`` until it returns something other than None; return it.

    Raises:
        ChildFailed: after ``timeout`` seconds, or as soon as the ``alive`` process has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if alive is not None and alive.poll() is not None:
            raise ChildFailed(f"gave up waiting for {what}: the process exited with code {alive.returncode}")
        if time.monotonic() >= deadline:
            raise ChildFailed(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(interval)
