"""The monitor's push to a Pushgateway: one group per deployment, the trainer gauge, errors returned.

A real HTTP server stands in for the Pushgateway and records the request prometheus-client makes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.monitor.metrics import push_metrics


class Gateway:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                gateway.requests.append((self.command, self.path, body))
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    yield server
    server.server.shutdown()


def _push(url: str, **overrides: Any) -> str | None:
    values: dict[str, Any] = {
        "psi": {"MedInc": 0.3},
        "drift_share": 0.5,
        "drift_detected": True,
        "live_mae": None,
        "reference_mae": 0.29,
        "trainer_failed": True,
        "finished_at": 1_700_000_000.0,
        "duration_seconds": 2.5,
        "grouping_key": {"namespace": "cali-housing-prod", "release": "prod"},
        **overrides,
    }
    return push_metrics(url, **values)


def test_each_deployment_pushes_to_its_own_group(gateway: Gateway) -> None:
    assert _push(gateway.url) is None
    staging = {"namespace": "cali-housing-staging", "release": "staging"}
    assert _push(gateway.url, grouping_key=staging) is None
    paths = [path for _, path, _ in gateway.requests]
    assert paths == [
        "/metrics/job/housing-monitor/namespace/cali-housing-prod/release/prod",
        "/metrics/job/housing-monitor/namespace/cali-housing-staging/release/staging",
    ]
    method, _, body = gateway.requests[0]
    assert method == "PUT"  # replaces the group's previous run
    assert "housing_trainer_failed 1.0" in body and 'housing_drift_psi{feature="MedInc"} 0.3' in body
    assert "housing_live_mae" not in body  # an absent figure is not pushed as a number


def test_a_successful_trainer_pushes_zero_and_an_unknown_one_nothing(gateway: Gateway) -> None:
    _push(gateway.url, trainer_failed=False)
    _push(gateway.url, trainer_failed=None)
    assert "housing_trainer_failed 0.0" in gateway.requests[0][2]
    assert "housing_trainer_failed" not in gateway.requests[1][2]


def test_an_unreachable_gateway_is_returned_not_raised() -> None:
    problem = _push("http://127.0.0.1:9", timeout=0.5)
    assert problem is not None and "Pushgateway" in problem


def test_where_the_log_partitions_end_is_pushed_when_known(gateway: Gateway) -> None:
    _push(gateway.url, partitions_end=1_700_086_400.0)
    _push(gateway.url)
    assert "housing_prediction_log_partitions_end_timestamp_seconds 1.7000864e+09" in gateway.requests[0][2]
    assert "housing_prediction_log_partitions_end_timestamp_seconds" not in gateway.requests[1][2]


def test_the_champion_version_is_pushed_and_zero_says_none_yet(gateway: Gateway) -> None:
    _push(gateway.url, champion_version=3)
    _push(gateway.url, champion_version=0)
    _push(gateway.url)
    assert "housing_monitor_champion_version 3.0" in gateway.requests[0][2]
    assert "housing_monitor_champion_version 0.0" in gateway.requests[1][2]
    assert "housing_monitor_champion_version" not in gateway.requests[2][2]


def test_the_estimate_is_pushed_with_its_standard_error(gateway: Gateway) -> None:
    _push(gateway.url, estimated_mae=0.41, estimated_mae_se=0.012)
    _push(gateway.url, estimated_mae=None, estimated_mae_se=None)
    assert "housing_estimated_mae 0.41" in gateway.requests[0][2]
    assert "housing_estimated_mae_se 0.012" in gateway.requests[0][2]
    assert "housing_estimated_mae_se" not in gateway.requests[1][2]
