"""The routes' typed dependencies (``Annotated`` aliases): the app's parts and the feedback token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.inference.errors import Forbidden, Unauthorized
from services.inference.parts import Services


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in AnyIO's worker threads, a round trip per request
    # (3.3% of the event loop's samples at concurrency 16, and a worker thread busy per request).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
_bearer = HTTPBearer(auto_error=False, description="FEEDBACK_TOKEN, when the server sets one.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def feedback_authorized(services: ServicesDep, credentials: BearerDep) -> None:
    """Passes when FEEDBACK_TOKEN is unset or the bearer token is one of its tokens; else 401/403."""
    tokens = services.settings.feedback_tokens
    if not tokens:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "POST /feedback needs `Authorization: Bearer <FEEDBACK_TOKEN>`",
            ["Authorization: must be Bearer <FEEDBACK_TOKEN>"],
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode()
    # Every token compared in full, whichever matches: the time taken says nothing about which one.
    matches = [hmac.compare_digest(given, token) for token in tokens]
    if not any(matches):
        raise Forbidden(
            "the bearer token is not one of FEEDBACK_TOKEN's", ["Authorization: the token does not match"]
        )
