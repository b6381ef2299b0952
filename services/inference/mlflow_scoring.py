"""MLflow's scoring API, as ``mlflow models serve`` speaks it: ``GET /ping``, ``GET /version`` and
``POST /invocations``, so clients of an MLflow model server can point here unchanged.

``/invocations`` takes the four request formats of MLflow's server (see :mod:`services.inference.frames`)
and answers ``{"predictions": [...]}`` in the model's output unit (100,000 USD), as MLflow's pyfunc
does, plus ``prediction_ids`` (for ``/feedback``) and ``model_version``, keys MLflow's clients ignore.
Rows go through the same micro-batcher as ``POST /predict``: logged, batched, hot-swapped alike.
Errors answer MLflow's ``error_code`` and ``message`` beside ``detail`` and ``problems``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive

from services.common.features import EXAMPLE, FEATURE_NAMES, TARGET_UNIT_USD
from services.inference.bodies import read_json
from services.inference.errors import NO_MODEL
from services.inference.frames import parse_invocations
from services.inference.parts import Services
from services.inference.protocol_routes import protocol_route
from services.inference.responses import JsonResponse

INVOCATIONS_PATH = "/invocations"
# MLflow's databricks-style error codes (mlflow.protos.databricks_pb2), by status
_ERROR_CODES = {404: "RESOURCE_DOES_NOT_EXIST", 503: "TEMPORARILY_UNAVAILABLE"}


def error_keys(status: int, detail: str) -> dict[str, object]:
    """MLflow's error keys, beside ``detail`` and ``problems``."""
    return {"error_code": _ERROR_CODES.get(status, "BAD_REQUEST"), "message": detail}


class ScoringError(BaseModel):
    error_code: str = Field(description="MLflow's error code, e.g. BAD_REQUEST.")
    message: str = Field(description="What is wrong, in one sentence (MLflow's field).")
    detail: str = Field(description="The same sentence, as POST /predict answers it.")
    problems: list[str] = Field(default_factory=list, description="Each field and the rule it breaks.")


class ScoringAnswer(BaseModel):
    predictions: list[float] = Field(
        description="The model's output per row, 100,000 USD (as MLflow's pyfunc)."
    )
    prediction_ids: list[str] = Field(description="Send one back with the true price to POST /feedback.")
    model_version: int


def _invocations_body(max_batch: int) -> dict[str, Any]:
    row = {"type": "object", "additionalProperties": {"type": "number"}}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "ScoringRequest",
                    "type": "object",
                    "description": f"Exactly one of the four keys, 1 to {max_batch} rows"
                    " (PREDICT_MAX_BATCH).",
                    "properties": {
                        "dataframe_split": {
                            "type": "object",
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string"}},
                                "data": {"type": "array", "items": {"type": "array"}},
                                "index": {"type": "array"},
                            },
                            "required": ["columns", "data"],
                        },
                        "dataframe_records": {"type": "array", "items": row},
                        "instances": {"type": "array"},
                        "inputs": {"type": ["array", "object"]},
                    },
                    "minProperties": 1,
                    "maxProperties": 1,
                },
                "examples": {
                    "dataframe_split": {
                        "value": {
                            "dataframe_split": {
                                "columns": list(FEATURE_NAMES),
                                "data": [[EXAMPLE[name] for name in FEATURE_NAMES]],
                            }
                        }
                    },
                    "dataframe_records": {"value": {"dataframe_records": [EXAMPLE]}},
                    "instances": {"value": {"instances": [EXAMPLE]}},
                    "inputs": {"value": {"inputs": {name: [EXAMPLE[name]] for name in FEATURE_NAMES}}},
                },
            }
        },
    }


async def invocations(
    services: Services, headers: Mapping[str, str], receive: Receive, arrived: float, _: Mapping[str, str]
) -> bytes:
    """The answer to one /invocations request (``arrived``: perf_counter at arrival)."""
    payload = await read_json(headers, receive, services.max_body)
    matrix = parse_invocations(payload, services.settings.predict_max_batch)
    scored = await services.batcher.score(matrix, arrived)
    return orjson.dumps(
        {
            # back to the model's unit (the batcher multiplied it by TARGET_UNIT_USD): within a ulp
            "predictions": [price / TARGET_UNIT_USD for price in scored.prices_usd],
            "prediction_ids": [str(one) for one in scored.ids],
            "model_version": scored.version,
        }
    )


def router(max_batch: int) -> APIRouter:
    """The MLflow scoring routes; they read the app's parts from ``request.app.state.services``."""
    scoring = APIRouter(tags=["MLflow scoring API"], route_class=protocol_route(error_keys))
    mlflow_version = metadata.version("mlflow")

    @scoring.get(
        "/ping",
        response_class=PlainTextResponse,
        responses={503: {"model": ScoringError}},
        summary="Ready (MLflow)",
    )
    async def ping(request: Request) -> Response:
        """200 once a champion is loaded (MLflow's server answers a newline), 503 before."""
        if request.app.state.services.holder.champion is None:
            return JsonResponse({**error_keys(503, NO_MODEL), "detail": NO_MODEL, "problems": []}, 503)
        return PlainTextResponse("\n")

    @scoring.get("/version", response_class=PlainTextResponse, summary="MLflow version (MLflow)")
    async def version() -> Response:
        """The version of MLflow whose scoring API this server speaks."""
        return PlainTextResponse(mlflow_version)

    @scoring.post(
        INVOCATIONS_PATH,
        response_model=ScoringAnswer,
        responses={status: {"model": ScoringError} for status in (400, 413, 415, 422, 503)},
        openapi_extra={"requestBody": _invocations_body(max_batch)},
        summary="Score rows (MLflow)",
    )
    async def invocations_route(request: Request) -> Response:
        """Score the rows of a DataFrame (split or records), instances or inputs; every row is logged."""
        arrived = time.perf_counter()
        services = request.app.state.services
        answer = await invocations(services, request.headers, request.receive, arrived, request.path_params)
        return Response(answer, media_type="application/json")

    return scoring
