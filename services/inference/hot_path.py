"""The scoring endpoints answered straight from ASGI, in front of FastAPI's own stack.

FastAPI's layers cost more than the work of a prediction: py-spy on ``housing serve`` under
``wrk -c16`` (one-row ``POST /predict``, compiled model) found the event loop busy ~77 % of the time,
mostly in ServerErrorMiddleware, the telemetry and body-limit middlewares, ExceptionMiddleware, the
AsyncExitStack layers, routing and dependency solving, with each middleware that watches the status
wrapping ``send``. Answering ``POST /predict`` here instead took the same server from ~3,700 to
~7,600 req/s against the no-op FastAPI endpoint's ~9,000 in alternating runs.

A hot route's handler reads its body (``read_json``) and answers JSON bytes; here it is called,
answered, and counted in the same metrics the middleware feeds for every other route. Errors answer
with the same status and body as FastAPI's handlers give them (``services.inference.errors``), with the
route's protocol keys added (``services.inference.protocol_routes``). FastAPI still declares these
routes (their endpoints call the same handlers), so ``/docs`` and ``/openapi.json`` describe them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

import orjson
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from services.common.logs import REQUEST_ID
from services.inference.batcher import ModelNotReady
from services.inference.errors import NO_MODEL, ApiError, error_body
from services.inference.metrics import Metrics
from services.inference.protocol_routes import ProtocolKeys
from services.inference.request_ids import HEADER, request_id
from services.inference.wire import send_whole

log = logging.getLogger(__name__)

# A handler takes the request's headers, its ASGI receive, its arrival (perf_counter) and its path
# parameters (by name, as FastAPI's path_params), and answers JSON bytes or raises a domain error.
Handler = Callable[[Mapping[str, str], Receive, float, Mapping[str, str]], Awaitable[bytes]]
_NO_PARAMS: Mapping[str, str] = {}

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class HotRoute:
    """``POST <path>`` answered by ``handle``; errors carry ``keys``'s fields too (a protocol's own).

    ``path`` is exact, or holds one ``{name}`` segment (``/v2/models/m/versions/{model_version}/infer``):
    a request matches when that segment is one non-empty path segment, handed to ``handle`` by name.
    """

    path: str
    handle: Handler
    keys: ProtocolKeys | None = None
    label: str = ""  # the route label of the metrics (a template, as FastAPI's routes have): the path

    @property
    def route_label(self) -> str:
        return self.label or self.path

    @property
    def parameter(self) -> tuple[str, str, str] | None:
        """(prefix, name, suffix) of a path with one ``{name}`` segment; None for an exact path."""
        head, brace, rest = self.path.partition("{")
        if not brace:
            return None
        name, _, tail = rest.partition("}")
        return head, name, tail

    def match(self, path: str) -> Mapping[str, str] | None:
        """The path parameter when ``path`` matches this templated route; None otherwise."""
        parameter = self.parameter
        if parameter is None:
            return None
        head, name, tail = parameter
        if not (path.startswith(head) and path.endswith(tail)) or len(path) <= len(head) + len(tail):
            return None
        value = path[len(head) : len(path) - len(tail)]
        return None if "/" in value else {name: value}


class ScoringApp(FastAPI):
    """The FastAPI app, with the hot routes answered before its middleware stack."""

    hot_routes: dict[str, HotRoute]
    templated_routes: tuple[HotRoute, ...] = ()
    hot_metrics: Metrics

    def serve_hot(self, metrics: Metrics, *routes: HotRoute) -> None:
        self.hot_metrics = metrics
        self.hot_routes = {route.path: route for route in routes if route.parameter is None}
        self.templated_routes = tuple(route for route in routes if route.parameter is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Each request runs in a task of its own (uvicorn), so the id stays with this request's lines.
        rid = request_id(scope)
        REQUEST_ID.set(rid)
        if scope["method"] == "POST":
            path = scope["path"]
            route = getattr(self, "hot_routes", {}).get(path)
            if route is not None:
                await answer(route, self.hot_metrics, scope, receive, send, _NO_PARAMS, rid)
                return
            for templated in self.templated_routes:  # tried only when no exact route matched
                params = templated.match(path)
                if params is not None:
                    await answer(templated, self.hot_metrics, scope, receive, send, params, rid)
                    return
        await super().__call__(scope, receive, partial(_with_request_id, send, rid.encode()))


async def _with_request_id(send: Send, rid: bytes, message: Message) -> None:
    if message["type"] == "http.response.start":
        message = {**message, "headers": [*message.get("headers", ()), (HEADER, rid)]}
    await send(message)


async def answer(
    route: HotRoute,
    metrics: Metrics,
    scope: Scope,
    receive: Receive,
    send: Send,
    params: Mapping[str, str],
    rid: str,
) -> None:
    """Serve one request of ``route``: read, handle, answer (``rid`` in its X-Request-ID), count."""
    arrived = time.perf_counter()
    headers: list[tuple[bytes, bytes]] = [_JSON, (HEADER, rid.encode())]
    status = 200
    try:
        body = await route.handle(Headers(scope=scope), receive, arrived, params)
    except ClientDisconnect:
        return  # nobody to answer
    except ApiError as error:
        status, body = error.status, _error(route, error.status, error.detail, error.problems)
        log.debug("POST %s answered %d: %s", route.path, status, error.detail)
        headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    except ModelNotReady:
        status, body = 503, _error(route, 503, NO_MODEL, [])
        headers.append((b"retry-after", b"10"))
    except Exception:
        log.exception("POST %s failed", route.path)
        status = 500
        body = _error(route, 500, "the server failed to answer; the error is in its log", [])
    headers.append((b"content-length", str(len(body)).encode()))
    await send_whole(send, status, headers, body)
    count, observe = metrics.answered(route.route_label, "POST", status)
    count()
    observe(time.perf_counter() - arrived)


def _error(route: HotRoute, status: int, detail: str, problems: list[str]) -> bytes:
    keys = route.keys(status, detail) if route.keys is not None else {}
    return orjson.dumps({**keys, **error_body(detail, problems)})
