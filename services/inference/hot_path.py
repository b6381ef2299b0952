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

import orjson
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from services.inference.batcher import ModelNotReady
from services.inference.errors import NO_MODEL, ApiError, error_body
from services.inference.metrics import Metrics
from services.inference.protocol_routes import ProtocolKeys

log = logging.getLogger(__name__)

# A handler takes the request's headers, its ASGI receive and its arrival (perf_counter), and answers
# JSON bytes or raises a domain error.
Handler = Callable[[Mapping[str, str], Receive, float], Awaitable[bytes]]

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class HotRoute:
    """``POST <path>`` answered by ``handle``; errors carry ``keys``'s fields too (a protocol's own)."""

    path: str
    handle: Handler
    keys: ProtocolKeys | None = None
    label: str = ""  # the route label of the metrics (a template, as FastAPI's routes have): the path

    @property
    def route_label(self) -> str:
        return self.label or self.path


class ScoringApp(FastAPI):
    """The FastAPI app, with the hot routes answered before its middleware stack."""

    hot_routes: dict[str, HotRoute]
    hot_metrics: Metrics

    def serve_hot(self, metrics: Metrics, *routes: HotRoute) -> None:
        self.hot_metrics = metrics
        self.hot_routes = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = getattr(self, "hot_routes", {}).get(scope["path"])
            if route is not None:
                await answer(route, self.hot_metrics, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def answer(route: HotRoute, metrics: Metrics, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one request of ``route``: read, handle, answer, count."""
    arrived = time.perf_counter()
    headers: list[tuple[bytes, bytes]] = [_JSON]
    status = 200
    try:
        body = await route.handle(Headers(scope=scope), receive, arrived)
    except ClientDisconnect:
        return  # nobody to answer
    except ApiError as error:
        status, body = error.status, _error(route, error.status, error.detail, error.problems)
        headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    except ModelNotReady:
        status, body = 503, _error(route, 503, NO_MODEL, [])
        headers.append((b"retry-after", b"10"))
    except Exception:
        log.exception("POST %s failed", route.path)
        status = 500
        body = _error(route, 500, "the server failed to answer; the error is in its log", [])
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    metrics.requests.labels(route.route_label, "POST", str(status)).inc()
    metrics.request_seconds.labels(route.route_label).observe(time.perf_counter() - arrived)


def _error(route: HotRoute, status: int, detail: str, problems: list[str]) -> bytes:
    keys = route.keys(status, detail) if route.keys is not None else {}
    return orjson.dumps({**keys, **error_body(detail, problems)})
