"""Counting and timing every HTTP request by route template (a plain ASGI middleware: cheap)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.inference.metrics import Metrics

UNMATCHED = "unmatched"  # any path no route serves: one label, so scanners cannot explode the series


class MetricsMiddleware:
    """Feeds ``http_requests_total{route,method,status}`` and ``http_request_duration_seconds{route}``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED
            method = scope["method"] if scope["method"] in {"GET", "POST", "HEAD", "OPTIONS"} else "OTHER"
            key = (path, method, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.metrics.requests.labels(path, method, str(status))
            child.inc()
            self.metrics.request_seconds.labels(path).observe(time.perf_counter() - started)
