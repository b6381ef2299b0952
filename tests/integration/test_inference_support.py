"""Helpers for the inference tests (no tests here): a real uvicorn server on a free port, in a thread."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI

from services.common.features import EXAMPLE
from services.inference.app import create_app
from services.inference.parts import Services
from services.inference.settings import InferenceSettings

ROW = dict(EXAMPLE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    url: str
    app: FastAPI

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@contextmanager
def serving(app: FastAPI) -> Iterator[Running]:
    """Run ``app`` under uvicorn on 127.0.0.1:<free port> until the block ends (then shut down cleanly)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(60)


def settings_for(home: Path, **overrides: object) -> InferenceSettings:
    """Settings on temporary ground: fast polls and flushes, a spool under ``home``."""
    values: dict[str, object] = {
        "housing_home": home,
        "model_poll_seconds": 0.3,
        "log_flush_seconds": 0.05,
        "log_retry_seconds": 0.3,
    }
    values.update(overrides)
    return InferenceSettings.model_validate(values)


def make_app(settings: InferenceSettings, database_url: str, registry_uri: str) -> FastAPI:
    from mlflow.tracking import MlflowClient

    return create_app(
        settings,
        database_url=database_url,
        client=MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri),
    )


def wait_for(condition: Callable[[], object], timeout: float = 30.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def count(database_url: str, sql: str = "SELECT count(*) FROM predictions") -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def fresh_database(server_url: str) -> str:
    """A new, migrated database on the test run's Postgres (for module-scoped servers)."""
    from services.common.database import migrate
    from tests.conftest import database_on

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_on(server_url, name)
    migrate(url)
    return url


class ClientLoop:
    """A client that POSTs /predict back to back in a thread and records every outcome."""

    def __init__(self, url: str, *, batch_every: int = 5) -> None:
        self.url = url
        self.batch_every = batch_every
        self.versions: list[int] = []
        self.ids: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=10) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                batch = n % self.batch_every == 0
                try:
                    answer = http.post("/predict", json={"instances": [ROW, ROW]} if batch else ROW)
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    continue
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code}: {answer.text}")
                    continue
                items = answer.json()["predictions"] if batch else [answer.json()]
                for item in items:
                    self.versions.append(item["model_version"])
                    self.ids.append(item["prediction_id"])


def start_housing_serve(env: dict[str, str], port: int, *, timeout: float = 90) -> subprocess.Popen[str]:
    """``housing serve`` in a child process with ``env``; returns once /readyz answers 200."""
    command = [sys.executable, "-c", "from services.cli import main; main()", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"housing serve exited:\n{process.communicate()[0]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"housing serve never became ready:\n{process.communicate()[0]}")
        time.sleep(0.2)


def stop_housing_serve(process: subprocess.Popen[str], *, timeout: float = 60) -> str:
    """SIGTERM, as Kubernetes stops a pod; returns the output after checking the shutdown was clean."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=timeout)
    # uvicorn re-raises the signal after a clean shutdown, so the parent sees "terminated by SIGTERM".
    assert process.returncode in (0, -signal.SIGTERM), output
    return output
