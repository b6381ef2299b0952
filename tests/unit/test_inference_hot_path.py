"""The hot routes answered in front of FastAPI: the same error answers and metrics as FastAPI's routes.

Driven through the ASGI interface uvicorn calls (scope, receive, send); the integration tests run the
real server over HTTP, schemathesis included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from prometheus_client import generate_latest
from starlette.types import Receive

from services.inference.batcher import ModelNotReady
from services.inference.bodies import read_json
from services.inference.errors import NO_MODEL, Unavailable
from services.inference.hot_path import HotRoute, ScoringApp
from services.inference.metrics import Metrics


def _call(app: ScoringApp, method: str, path: str, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    incoming = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _body(data: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": data, "more_body": False}]


def _app(handle: Any, keys: Any = None) -> tuple[ScoringApp, Metrics]:
    """An app with one hot route, ``/hot``: ``handle`` gets the JSON body (at most 1,000 bytes)."""
    metrics = Metrics()
    app = ScoringApp()

    async def read_then_handle(
        headers: Mapping[str, str], receive: Receive, arrived: float, path: Mapping[str, str]
    ) -> bytes:
        result: bytes = await handle(await read_json(headers, receive, 1000), arrived)
        return result

    app.serve_hot(metrics, HotRoute("/hot", read_then_handle, keys))
    return app, metrics


def _answer(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], Any]:
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    return start["status"], dict(start["headers"]), orjson.loads(body["body"])


def _counted(metrics: Metrics, status: int) -> bool:
    text = generate_latest(metrics.registry).decode()
    return f'http_requests_total{{method="POST",route="/hot",status="{status}"}} 1.0' in text


def test_an_answer_is_sent_and_counted() -> None:
    async def echo(payload: object, arrived: float) -> bytes:
        return orjson.dumps({"got": payload})

    app, metrics = _app(echo)
    # The body arrives in two chunks; both are read.
    sent = _call(
        app,
        "POST",
        "/hot",
        [
            {"type": "http.request", "body": b'{"a": ', "more_body": True},
            {"type": "http.request", "body": b"1}", "more_body": False},
        ],
    )
    status, headers, body = _answer(sent)
    assert (status, body) == (200, {"got": {"a": 1}})
    assert (
        headers[b"content-type"] == b"application/json"
        and headers[b"content-length"] == str(len(sent[1]["body"])).encode()
    )
    assert _counted(metrics, 200)


def test_domain_errors_answer_as_fastapis_handlers_do() -> None:
    async def down(payload: object, arrived: float) -> bytes:
        raise Unavailable("Postgres is down", ["database: unreachable"], headers={"Retry-After": "5"})

    app, metrics = _app(down)
    status, headers, body = _answer(_call(app, "POST", "/hot", _body(b"{}")))
    assert status == 503 and headers[b"retry-after"] == b"5"
    assert body == {"detail": "Postgres is down", "problems": ["database: unreachable"]}
    assert _counted(metrics, 503)

    async def not_ready(payload: object, arrived: float) -> bytes:
        raise ModelNotReady

    app, metrics = _app(not_ready)
    status, headers, body = _answer(_call(app, "POST", "/hot", _body(b"{}")))
    assert status == 503 and headers[b"retry-after"] == b"10" and body["detail"] == NO_MODEL


def test_a_protocols_own_error_keys_join_the_common_body() -> None:
    async def down(payload: object, arrived: float) -> bytes:
        raise Unavailable("Postgres is down")

    app, _ = _app(down, keys=lambda status, detail: {"error": f"{status}: {detail}"})
    status, _, body = _answer(_call(app, "POST", "/hot", _body(b"{}")))
    assert status == 503
    assert body == {"error": "503: Postgres is down", "detail": "Postgres is down", "problems": []}


def test_bad_bodies_are_refused_before_the_handler() -> None:
    called: list[object] = []

    async def record(payload: object, arrived: float) -> bytes:
        called.append(payload)
        return b"{}"

    app, metrics = _app(record)
    status, _, body = _answer(_call(app, "POST", "/hot", _body(b"{nope")))
    assert status == 400 and body["problems"][0].startswith("body: must be JSON")
    status, _, body = _answer(_call(app, "POST", "/hot", _body(b"[" + b"1," * 600 + b"1]")))
    assert status == 413 and "at most 1000 bytes" in body["problems"][0]
    assert not called and _counted(metrics, 400) and _counted(metrics, 413)


def test_a_crash_is_a_500_in_the_same_shape_and_is_logged(caplog: Any) -> None:
    async def crash(payload: object, arrived: float) -> bytes:
        raise RuntimeError("boom")

    app, metrics = _app(crash)
    status, _, body = _answer(_call(app, "POST", "/hot", _body(b"{}")))
    assert status == 500 and body == {
        "detail": "the server failed to answer; the error is in its log",
        "problems": [],
    }
    assert "boom" in caplog.text and _counted(metrics, 500)


def test_a_client_that_leaves_gets_no_answer_and_other_methods_reach_fastapi() -> None:
    async def never(payload: object, arrived: float) -> bytes:
        raise AssertionError("not reached")

    app, _ = _app(never)
    assert _call(app, "POST", "/hot", [{"type": "http.request", "body": b"{", "more_body": True}]) == []
    # GET /hot is not a hot route: FastAPI answers (no such route here: 404).
    start = _call(app, "GET", "/hot", _body(b""))[0]
    assert start["status"] == 404


def test_a_templated_route_takes_one_segment_and_hands_it_over_by_name() -> None:
    """The versioned V2 infer path is hot too: ``{model_version}`` matches one non-empty segment."""
    seen: list[Mapping[str, str]] = []

    async def handle(
        headers: Mapping[str, str], receive: Receive, arrived: float, path: Mapping[str, str]
    ) -> bytes:
        seen.append(path)
        return b"{}"

    metrics = Metrics()
    app = ScoringApp()
    app.serve_hot(metrics, HotRoute("/m/versions/{model_version}/infer", handle, label="/m/{v}"))
    status, _, _ = _answer(_call(app, "POST", "/m/versions/7/infer", _body(b"{}")))
    assert status == 200 and seen == [{"model_version": "7"}]
    for other in ("/m/versions//infer", "/m/versions/7/8/infer", "/m/versions/7/infer/x", "/m/infer"):
        assert _call(app, "POST", other, _body(b"{}"))[0]["status"] == 404, other  # FastAPI: no route
    assert seen == [{"model_version": "7"}]
    assert metrics.requests.labels("/m/{v}", "POST", "200").value == 1
