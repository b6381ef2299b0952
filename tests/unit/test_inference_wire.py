"""A hot route's answer in one write: under real uvicorn (httptools), the same HTTP as its own send gives."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from services.inference.bodies import read_json
from services.inference.hot_path import HotRoute, ScoringApp
from services.inference.metrics import Metrics


async def _echo(headers: Mapping[str, str], receive: Receive, arrived: float, _: Mapping[str, str]) -> bytes:
    await read_json(headers, receive, 1000)
    return b'{"ok":true}'


@pytest.fixture(autouse=True)
def _no_access_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # As housing serve runs uvicorn (access_log=False): pytest's log capture would count as a handler.
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "hasHandlers", lambda: False)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = ScoringApp()
    app.serve_hot(Metrics(), HotRoute("/hot", _echo))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free, http="httptools", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield free
    server.should_exit = True
    thread.join(10)


def _request(extra: bytes = b"") -> bytes:
    body = b'{"a": 1}'
    return (
        b"POST /hot HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: abc-1\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)
    )


def _read_until_closed_or(sock: socket.socket, responses: int) -> bytes:
    data = b""
    while data.count(b'{"ok":true}') < responses:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The messages that go through uvicorn's own send (which still writes them), in order."""
    seen: list[object] = []
    original = RequestResponseCycle.send

    async def counted(self: RequestResponseCycle, message: Any) -> None:
        seen.append(message)
        await original(self, message)

    monkeypatch.setattr(RequestResponseCycle, "send", counted)
    return seen


def test_pipelined_requests_on_one_connection_each_get_a_whole_answer(port: int, sends: list[object]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request() * 3)
        data = _read_until_closed_or(sock, 3)
    assert sends == []  # written whole, not through uvicorn's send
    _check(data)


def test_with_an_access_log_uvicorn_sends_the_answer(
    port: int, sends: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "hasHandlers", lambda: True)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request() * 3)
        data = _read_until_closed_or(sock, 3)
    assert len(sends) == 6
    _check(data)


def _check(data: bytes) -> None:
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"200 OK"
        fields = dict(line.split(b": ", 1) for line in lines[1:])
        assert fields[b"content-type"] == b"application/json"
        assert fields[b"x-request-id"] == b"abc-1"
        assert fields[b"content-length"] == b"11" and body == b'{"ok":true}'
        assert fields[b"server"] == b"uvicorn" and b"date" in fields
        assert b"connection" not in fields


def test_connection_close_is_answered_and_honoured(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request(b"Connection: close\r\n"))
        data = _read_until_closed_or(sock, 2)  # returns when the server closes
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in data
    assert data.endswith(b'{"ok":true}')


def test_errors_go_out_whole_too(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /hot HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        )
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 415 ")
    assert b"Content-Type must be application/json" in data
