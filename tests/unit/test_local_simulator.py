"""The simulator against a stub inference server (a real local HTTP server answering as the contract says)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.common.features import EXAMPLE
from services.local.alert_receiver import AlertReceiver
from services.local.simulator import BatchPlan, Simulator, plan_batches


class Stub:
    """Answers /predict (single and batch) and /feedback; remembers what it got."""

    def __init__(self, token: str | None = None, fail_predict: bool = False) -> None:
        self.token = token
        self.fail_predict = fail_predict
        self.requests: list[int] = []  # rows per /predict request
        self.answered: dict[str, float] = {}  # prediction id -> time answered
        self.feedback: dict[str, tuple[float, float]] = {}  # prediction id -> (price, time received)
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/predict":
                    if stub.fail_predict:
                        return self.reply(503, {"detail": "no model"})
                    rows = body.get("instances", [body])
                    answers = []
                    with stub.lock:
                        stub.requests.append(len(rows))
                        for _ in rows:
                            pid = str(uuid.uuid4())
                            stub.answered[pid] = time.monotonic()
                            answers.append(
                                {"predicted_price_usd": 1.0, "prediction_id": pid, "model_version": 3}
                            )
                    return self.reply(200, {"predictions": answers} if "instances" in body else answers[0])
                if self.path == "/feedback":
                    if stub.token and self.headers.get("Authorization") != f"Bearer {stub.token}":
                        return self.reply(401, {"detail": "token"})
                    with stub.lock:
                        stub.feedback[body["prediction_id"]] = (body["actual_price_usd"], time.monotonic())
                    return self.reply(202, {"ok": True})
                return self.reply(404, {})

            def reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(stub: Stub) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), stub.handler())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_plan_batches() -> None:
    assert plan_batches(2) == BatchPlan(1, 0.5)
    assert plan_batches(100) == BatchPlan(20, 0.2)
    assert plan_batches(10_000, max_batch=200) == BatchPlan(200, 0.02)
    assert plan_batches(0).interval == 0.0 and plan_batches(None).size > 1


def rows(n: int) -> list[dict[str, float]]:
    return [dict(EXAMPLE) for _ in range(n)]


def test_sends_in_batches_and_posts_every_true_price_after_the_delay(serve: Any) -> None:
    stub = Stub(token="s3cret-token")
    with httpx.Client(base_url=serve(stub), timeout=5) as client:
        summary = Simulator(client, token="s3cret-token").run(
            rows(100), [100_000.0 + i for i in range(100)], rate=500, feedback_delay=0.3
        )
    assert (summary.sent, summary.failed, summary.feedback_posted, summary.feedback_failed) == (
        100,
        0,
        100,
        0,
    )
    assert summary.versions == {3: 100}
    assert max(stub.requests) == 100 and sum(stub.requests) == 100  # one tick of 500 rows/s is 100 rows
    assert sorted(price for price, _ in stub.feedback.values()) == [100_000.0 + i for i in range(100)]
    assert all(stub.feedback[pid][1] - stub.answered[pid] >= 0.29 for pid in stub.feedback)


def test_withheld_prices_arrive_only_when_posted(serve: Any) -> None:
    stub = Stub(token="t")
    with httpx.Client(base_url=serve(stub), timeout=5) as client:
        simulator = Simulator(client, token="t")
        summary = simulator.run(
            rows(20), [float(i) for i in range(20)], rate=0, feedback_delay=0, withhold=True
        )
        time.sleep(0.1)
        assert summary.sent == 20 and summary.feedback_posted == 0 and stub.feedback == {}
        assert sorted(price for _, price in summary.withheld) == [float(i) for i in range(20)]
        later = simulator.post_feedback(summary.withheld)
    assert (later.feedback_posted, later.feedback_failed) == (20, 0)
    assert {pid: price for pid, (price, _) in stub.feedback.items()} == dict(summary.withheld)


def test_low_rate_sends_one_row_per_request(serve: Any) -> None:
    stub = Stub()
    with httpx.Client(base_url=serve(stub), timeout=5) as client:
        started = time.monotonic()
        summary = Simulator(client).run(rows(3), [1.0, 2.0, 3.0], rate=4, feedback_delay=0)
    assert stub.requests == [1, 1, 1]
    assert time.monotonic() - started >= 0.45  # three rows at 4 rows/s: the last goes out after 0.5 s
    assert summary.feedback_posted == 3


def test_failures_are_counted_not_retried(serve: Any) -> None:
    stub = Stub(token="right")
    with httpx.Client(base_url=serve(stub), timeout=5) as client:
        wrong_token = Simulator(client, token="wrong").run(rows(10), [1.0] * 10, rate=0, feedback_delay=0)
    assert wrong_token.sent == 10 and wrong_token.feedback_failed == 10
    assert "HTTP 401" in wrong_token.errors[0]

    down = Stub(fail_predict=True)
    with httpx.Client(base_url=serve(down), timeout=5) as client:
        summary = Simulator(client).run(rows(10), [1.0] * 10, rate=0, feedback_delay=0)
    assert (summary.sent, summary.failed, summary.feedback_posted) == (0, 10, 0)
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=1) as client:
        refused = Simulator(client).run(rows(2), [1.0] * 2, rate=0, feedback_delay=0)
    assert refused.failed == 2 and "ConnectError" in refused.errors[0]


def test_stop_ends_early_but_still_posts_the_feedback_due(serve: Any) -> None:
    stub = Stub()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with httpx.Client(base_url=serve(stub), timeout=5) as client:
        summary = Simulator(client).run(rows(10_000), [1.0] * 10_000, rate=100, feedback_delay=0.2, stop=stop)
    assert 0 < summary.sent < 10_000
    assert summary.feedback_posted == summary.sent


def test_alert_receiver_counts_posts() -> None:
    with AlertReceiver() as receiver:
        httpx.post(receiver.url, json={"status": "drift"}, timeout=5)
        httpx.post(receiver.url, content=b"not json", timeout=5)
        assert receiver.count() == 2
        assert receiver.alerts[0][1] == {"status": "drift"}
