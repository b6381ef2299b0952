"""Error answers in another protocol's shape, for the routes that speak it (V2, MLflow's scoring API).

The app's exception handlers answer ``{"detail", "problems"}`` (see :mod:`services.inference.errors`).
A client of the Open Inference Protocol reads ``error`` instead, and MLflow's clients read
``error_code`` and ``message``; a router built with :func:`protocol_route` answers its domain errors
with the protocol's keys *beside* ``detail`` and ``problems``, so one status and one sentence naming the
rule reach every kind of client, from the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from services.inference.batcher import ModelNotReady
from services.inference.errors import NO_MODEL, ApiError, error_body
from services.inference.responses import JsonResponse

# (status, detail) -> the protocol's own keys, merged into the common error body
ProtocolKeys = Callable[[int, str], dict[str, object]]


def protocol_route(keys: ProtocolKeys) -> type[APIRoute]:
    """An ``APIRoute`` class whose handler answers ApiError and ModelNotReady with ``keys``'s fields added.

    Args:
        keys: the protocol's error fields for a status and a sentence, e.g. ``{"error": detail}``.

    Returns:
        A route class for ``APIRouter(route_class=...)``.
    """

    class ProtocolRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except ApiError as error:
                    return _answer(keys, error.status, error.detail, error.problems, error.headers)
                except ModelNotReady:
                    return _answer(keys, 503, NO_MODEL, [], {"Retry-After": "10"})

            return handle

    return ProtocolRoute


def _answer(
    keys: ProtocolKeys, status: int, detail: str, problems: list[str], headers: dict[str, str] | None
) -> JsonResponse:
    return JsonResponse({**keys(status, detail), **error_body(detail, problems)}, status, headers=headers)
