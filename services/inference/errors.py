"""Domain errors of the API and the one table that turns them into HTTP answers.

Every error answer has the same shape: ``{"detail": "one sentence", "problems": ["field: rule", ...]}``,
where each problem names the field and the rule it breaks.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.inference.batcher import ModelNotReady
from services.inference.responses import JsonResponse

NO_MODEL = (
    "no champion model is loaded yet: on an empty registry the monitor trains v1 at its next run "
    "(in a cluster its CronJob; locally `housing monitor` or `housing train`), and the server picks "
    "it up within MODEL_POLL_SECONDS"
)


class ApiError(Exception):
    """An answer other than success, with a status, a sentence and the problems found."""

    status = 400

    def __init__(
        self, detail: str, problems: list[str] | None = None, *, headers: dict[str, str] | None = None
    ):
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or []
        self.headers = headers


class NotJson(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class TooLarge(ApiError):
    status = 413


class WrongContentType(ApiError):
    status = 415


class InvalidInput(ApiError):
    status = 422


class Unavailable(ApiError):
    status = 503


def error_body(detail: str, problems: list[str] | None = None) -> dict[str, object]:
    return {"detail": detail, "problems": problems or []}


def install_handlers(app: FastAPI) -> None:
    """Map the domain errors (and FastAPI's own) to answers of the shape above."""

    async def api_error(_: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, ApiError)
        return JsonResponse(error_body(error.detail, error.problems), error.status, headers=error.headers)

    async def not_ready(_: Request, __: Exception) -> JsonResponse:
        return JsonResponse(error_body(NO_MODEL), 503, headers={"Retry-After": "10"})

    async def validation(_: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, RequestValidationError)
        problems = [
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
        ]
        return JsonResponse(error_body("the request is not valid", problems), 422)

    async def http_error(_: Request, error: Exception) -> JsonResponse:
        assert isinstance(error, StarletteHTTPException)
        return JsonResponse(error_body(str(error.detail)), error.status_code, headers=error.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ModelNotReady, not_ready)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
