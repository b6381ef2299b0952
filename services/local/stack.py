"""The closed loop's running parts on one machine, for the demo and the closed-loop test alike.

A ``Stack`` is a state folder (HOUSING_HOME) with its database, a ``housing serve`` child, a local
webhook receiver for alerts and the settings the children run with; it sends traffic (rows, then their
true prices), runs ``housing monitor --json``, and stops a trainer the monitor launched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common.connections import stop_embedded_postgres
from services.common.signing_keys import local_keypair
from services.local.alert_receiver import AlertReceiver
from services.local.observation import Observation
from services.local.processes import Children, Finished, housing_command, wait_for
from services.local.simulator import SimulationSummary, Simulator

# Settings the children must not inherit from the caller's shell: the stack runs on its own state and
# alerts only its own receiver.
FOREIGN_SETTINGS = (
    "DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "HOUSING_HOME",
    "REPORTS_DIR",
    "SPOOL_DIR",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "PUSHGATEWAY_URL",
    "MODEL_SIGNING_KEY",
    "MODEL_VERIFY_KEYS",
)


class StackError(RuntimeError):
    """A part of the stack did not do what it was asked (a monitor run that failed, no JSON)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reset_home(home: Path) -> None:
    """A fresh state folder: stop the Postgres a previous run left there, delete it, create it traversable."""
    if (home / "postgres").exists():
        stop_embedded_postgres(home / "postgres")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    # The embedded Postgres runs as another system user when we are root: it must be able to enter.
    home.chmod(0o755)


@dataclass
class Stack:
    """The running system and the means to drive it; ``configure`` once the database is known."""

    home: Path
    children: Children
    receiver: AlertReceiver
    token: str
    port: int = field(default_factory=free_port)
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    sent: int = 0  # rows answered so far, all of which the server logs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def observation(self) -> Observation:
        return Observation(self.database_url)

    def configure(self, database_url: str, settings: Mapping[str, str]) -> None:
        """The children's environment: the caller's minus FOREIGN_SETTINGS, ``settings``, this stack's own."""
        self.database_url = database_url
        inherited = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
        keys = local_keypair(self.home)  # made on first use: the trainer signs, every reader checks
        self.env = {
            **inherited,
            **settings,
            "HOUSING_HOME": str(self.home),
            "DATABASE_URL": database_url,
            "FEEDBACK_TOKEN": self.token,
            "ALERT_WEBHOOK_URL": self.receiver.url,
            "REPORTS_DIR": str(self.home / "reports"),
            "MODEL_SIGNING_KEY": keys.private,
            "MODEL_VERIFY_KEYS": keys.public,
            "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
        }

    def start_server(self, timeout: float = 90) -> int:
        """Start ``housing serve``; the version it serves once it answers."""
        argv = housing_command("serve", "--host", "127.0.0.1", "--port", str(self.port))
        process = self.children.start("serve", argv, env=self.env)
        version: int = wait_for(self.served_version, timeout=timeout, what=f"{self.url}/model", alive=process)
        return version

    def http(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def served_version(self) -> int | None:
        try:
            with self.http(timeout=2) as client:
                response = client.get("/model")
        except httpx.HTTPError:
            return None
        if not response.is_success:
            return None
        version = response.json().get("version")
        return int(version) if version is not None else None

    def send(
        self,
        bodies: Sequence[Mapping[str, float]],
        prices: Sequence[float],
        *,
        rate: float | None,
        feedback_delay: float,
        stop: threading.Event | None = None,
        on_progress: Callable[[SimulationSummary], None] | None = None,
        withhold: bool = False,
    ) -> SimulationSummary:
        """Send rows and, ``feedback_delay`` s later, their true prices (with ``withhold``: not yet, they
        wait in ``summary.withheld`` for :meth:`post_labels`); count what was answered."""
        with self.http() as client:
            summary = Simulator(client, token=self.token).run(
                bodies,
                prices,
                rate=rate,
                feedback_delay=feedback_delay,
                stop=stop,
                on_progress=on_progress,
                withhold=withhold,
            )
        self.sent += summary.sent
        return summary

    def post_labels(self, labels: Sequence[tuple[str, float]]) -> SimulationSummary:
        """The true prices of withheld rows arrive: posted to ``/feedback`` now."""
        with self.http() as client:
            return Simulator(client, token=self.token).post_feedback(labels)

    def wait_logged(self, timeout: float = 30) -> None:
        """Wait until the server's background writer has written every prediction answered so far."""
        observation = self.observation

        def logged() -> int | None:
            count = observation.logged_predictions()
            return count if count >= self.sent else None

        wait_for(logged, timeout=timeout, what=f"{self.sent} predictions in Postgres", interval=0.2)

    def monitor(self, timeout: float = 240) -> tuple[dict[str, Any], Finished]:
        """One ``housing monitor --json`` run: its summary, and how the process ended."""
        finished = self.children.run(
            "monitor", housing_command("monitor", "--json"), env=self.env, timeout=timeout
        )
        if finished.returncode != 0:
            raise StackError(f"housing monitor exited with {finished.returncode} (log: {finished.log})")
        try:
            report: dict[str, Any] = json.loads(finished.stdout)
        except ValueError as error:
            raise StackError(f"housing monitor --json printed no JSON (log: {finished.log})") from error
        return report, finished

    def stop_trainer(self) -> list[str]:
        """Stop a trainer the monitor launched under ``home``, if it still runs.

        The local launcher's lock file names the trainer's process (a session leader) with its start time,
        so a recycled pid is never signalled.
        """
        from services.monitor.launchers.local import read_lock, trainer_running

        lock = read_lock(self.home)
        if not lock or not trainer_running(self.home):
            return []
        pid = int(lock["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        return [f"trainer (pid {pid})"]
