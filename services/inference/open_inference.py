"""The Open Inference Protocol (KServe V2), REST: what KServe, Seldon's MLServer and Triton clients speak.

``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/cali-housing[/versions/{v}]``
(metadata), ``.../ready`` and ``POST .../infer``. The model takes one tensor ``features`` (FP64,
``[n, 8]``, the features in the schema's order) and answers two outputs: ``MedHouseVal`` (FP64,
``[n]``, the model's output in 100,000 USD) and ``prediction_id`` (BYTES, ``[n]``, for ``/feedback``).
Rows are scored by the same micro-batcher as ``POST /predict``, so each is logged, batched and
hot-swapped as those are. Errors answer V2's ``{"error": ...}`` beside the ``detail`` and ``problems``
that ``/predict`` answers, with the same statuses. JSON tensors only: the binary tensor extension is
refused (tritonclient: ``set_data_from_numpy(x, binary_data=False)``); a request's
``binary_data_output`` is answered in JSON, which tritonclient reads as well.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive

from services.common.features import FEATURE_NAMES, FEATURES, TARGET_UNIT_USD
from services.common.registry import MODEL_NAME
from services.inference.batcher import ModelNotReady
from services.inference.bodies import read_json
from services.inference.errors import NotFound, WrongContentType
from services.inference.parts import Services
from services.inference.protocol_routes import protocol_route
from services.inference.responses import JsonResponse
from services.inference.tensors import (
    INPUT,
    OUTPUT_ID,
    OUTPUT_PRICE,
    OUTPUTS,
    parse_infer,
)

INFER_ROUTE = "/v2/models/{model_name}/infer"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"  # a hot route (services.inference.hot_path)
VERSION_INFER_ROUTE = "/v2/models/{model_name}/versions/{model_version}/infer"
VERSION_INFER_PATH = f"/v2/models/{MODEL_NAME}/versions/{{model_version}}/infer"  # hot, templated
# tritonclient sends this header with binary tensors (and no Content-Type at all with JSON ones).
BINARY_HEADER = "inference-header-content-length"


class V2Error(BaseModel):
    error: str = Field(description="What is wrong, in one sentence (the V2 protocol's error field).")
    detail: str = Field(description="The same sentence, as POST /predict answers it.")
    problems: list[str] = Field(default_factory=list, description="Each field and the rule it breaks.")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] = Field(default_factory=dict)


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float | str]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensor]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": V2Error} for status in statuses}


def _infer_body(max_batch: int) -> dict[str, Any]:
    """The documented ``requestBody`` of the infer routes (the rules beyond types are in the parser)."""
    example_row = [f.example for f in FEATURES]
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": [INPUT]},
            "datatype": {"type": "string", "enum": ["FP64", "FP32"]},
            "shape": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "data": {
                "type": "array",
                "description": f"n x {len(FEATURES)} numbers, row-major, flat or nested",
            },
            "parameters": {"type": "object"},
        },
        "required": ["name", "datatype", "shape", "data"],
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "InferRequest",
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string", "enum": list(OUTPUTS)}},
                                "required": ["name"],
                            },
                        },
                    },
                    "required": ["inputs"],
                    "description": f"One tensor {INPUT} of 1 to {max_batch} rows (PREDICT_MAX_BATCH).",
                },
                "example": {
                    "id": "42",
                    "inputs": [{"name": INPUT, "datatype": "FP64", "shape": [1, 8], "data": example_row}],
                },
            }
        },
    }


def model_metadata(version: int, runtime: str) -> dict[str, Any]:
    """What ``GET /v2/models/cali-housing`` answers for the served ``version``."""
    return {
        "name": MODEL_NAME,
        "versions": [str(version)],
        "platform": runtime,
        "inputs": [
            {
                "name": INPUT,
                "datatype": "FP64",
                "shape": [-1, len(FEATURE_NAMES)],
                "parameters": {"columns": list(FEATURE_NAMES)},
            }
        ],
        "outputs": [
            {"name": OUTPUT_PRICE, "datatype": "FP64", "shape": [-1], "parameters": {"unit": "100,000 USD"}},
            {"name": OUTPUT_ID, "datatype": "BYTES", "shape": [-1], "parameters": {"use": "POST /feedback"}},
        ],
    }


def error_keys(status: int, detail: str) -> dict[str, object]:
    """The V2 error body's own key, beside ``detail`` and ``problems``."""
    return {"error": detail}


def served_version(services: Services, model_name: str, model_version: str | None) -> int:
    """The served version, when the path names this model (and, if any, that version).

    Raises:
        NotFound: another model or version.
        ModelNotReady: no champion is loaded.
    """
    if model_name != MODEL_NAME:
        raise NotFound(
            f"model {model_name[:64]!r} is not served here: this server serves {MODEL_NAME}",
            [f"model_name: must be {MODEL_NAME}"],
        )
    served = services.holder.champion
    if served is None:
        raise ModelNotReady
    if model_version is not None and model_version != str(served.version):
        raise NotFound(
            f"{MODEL_NAME} version {model_version[:32]} is not served here: this server serves version"
            f" {served.version} (the @champion)",
            [f"model_version: must be {served.version}"],
        )
    return int(served.version)


async def infer(
    services: Services, headers: Mapping[str, str], receive: Receive, arrived: float, path: Mapping[str, str]
) -> bytes:
    """The answer to one V2 infer request (``arrived``: perf_counter at arrival; ``path``: its parameters,
    ``model_name`` (else the served model's) and ``model_version`` (else whichever is served))."""
    served_version(services, path.get("model_name", MODEL_NAME), path.get("model_version"))
    if BINARY_HEADER in headers:
        raise WrongContentType(
            "the binary tensor extension is not taken here: send JSON tensors"
            " (tritonclient: set_data_from_numpy(x, binary_data=False))",
            ["Inference-Header-Content-Length: binary tensors are not taken"],
        )
    # tritonclient sends JSON without a Content-Type; any other declared type is refused.
    payload = await read_json(headers, receive, services.max_body, default_type="application/json")
    parsed = parse_infer(payload, services.settings.predict_max_batch)
    scored = await services.batcher.score(parsed.matrix, arrived)
    rows = len(scored.ids)
    outputs = {
        OUTPUT_PRICE: {
            "name": OUTPUT_PRICE,
            "datatype": "FP64",
            "shape": [rows],
            # back to the model's unit (the batcher multiplied it by TARGET_UNIT_USD): within a ulp
            "data": [price / TARGET_UNIT_USD for price in scored.prices_usd],
        },
        OUTPUT_ID: {
            "name": OUTPUT_ID,
            "datatype": "BYTES",
            "shape": [rows],
            "data": [str(one) for one in scored.ids],
        },
    }
    answer: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": str(scored.version)}
    if parsed.request_id is not None:
        answer["id"] = parsed.request_id
    answer["outputs"] = [outputs[name] for name in parsed.outputs]
    return orjson.dumps(answer)


def router(max_batch: int) -> APIRouter:
    """The V2 routes; they read the app's parts from ``request.app.state.services``."""
    v2 = APIRouter(
        prefix="/v2",
        tags=["Open Inference Protocol (V2)"],
        route_class=protocol_route(error_keys),
    )

    _server_routes(v2)
    _model_routes(v2, max_batch)
    return v2


def _server_routes(v2: APIRouter) -> None:
    @v2.get("", response_model=ServerMetadata, summary="Server metadata (V2)")
    async def server_metadata(request: Request) -> Response:
        """The server's name, version and protocol extensions (none)."""
        return JsonResponse(
            {"name": "cali-housing-inference", "version": request.app.version, "extensions": []}
        )

    @v2.get("/health/live", response_model=Live, summary="Server live (V2)")
    async def live() -> Response:
        """The process answers."""
        return JsonResponse({"live": True})

    @v2.get(
        "/health/ready", response_model=Ready, responses={503: {"model": Ready}}, summary="Server ready (V2)"
    )
    async def ready(request: Request) -> Response:
        """200 once a champion is loaded, 503 before."""
        loaded = request.app.state.services.holder.champion is not None
        return JsonResponse({"ready": loaded}, 200 if loaded else 503)


def _model_routes(v2: APIRouter, max_batch: int) -> None:
    async def metadata(request: Request, model_name: str, model_version: str | None) -> Response:
        version = served_version(request.app.state.services, model_name, model_version)
        return JsonResponse(model_metadata(version, request.app.state.services.holder.champion.runtime))

    async def model_ready(request: Request, model_name: str, model_version: str | None) -> Response:
        served_version(request.app.state.services, model_name, model_version)
        return JsonResponse({"name": model_name, "ready": True})

    model = "/models/{model_name}"
    versioned = "/models/{model_name}/versions/{model_version}"
    metadata_doc: dict[str, Any] = {
        "response_model": ModelMetadata,
        "responses": _errors(404, 503),
        "summary": "Model metadata (V2)",
    }
    ready_doc: dict[str, Any] = {
        "response_model": ModelReady,
        "responses": _errors(404, 503),
        "summary": "Model ready (V2)",
    }
    infer_doc: dict[str, Any] = {
        "response_model": InferResponse,
        "responses": _errors(400, 404, 413, 415, 422, 503),
        "openapi_extra": {"requestBody": _infer_body(max_batch)},
        "summary": "Infer (V2)",
    }

    @v2.get(model, **metadata_doc)
    async def model_metadata_route(request: Request, model_name: str) -> Response:
        """The input tensor, the outputs and the served version."""
        return await metadata(request, model_name, None)

    @v2.get(versioned, **metadata_doc)
    async def version_metadata_route(request: Request, model_name: str, model_version: str) -> Response:
        """The same, for the served version (another version: 404)."""
        return await metadata(request, model_name, model_version)

    @v2.get(f"{model}/ready", **ready_doc)
    async def model_ready_route(request: Request, model_name: str) -> Response:
        """200 while a champion of this model is served."""
        return await model_ready(request, model_name, None)

    @v2.get(f"{versioned}/ready", **ready_doc)
    async def version_ready_route(request: Request, model_name: str, model_version: str) -> Response:
        """200 while this version is the one served."""
        return await model_ready(request, model_name, model_version)

    @v2.post(f"{model}/infer", **infer_doc)
    async def model_infer_route(request: Request, model_name: str) -> Response:
        """Score n rows of the eight features; every row is logged, and its prediction id returned."""
        return await _infer(request)

    @v2.post(f"{versioned}/infer", **infer_doc)
    async def version_infer_route(request: Request, model_name: str, model_version: str) -> Response:
        """The same, with the served version named (another version: 404)."""
        return await _infer(request)


async def _infer(request: Request) -> Response:
    """Another model's name in the path reaches FastAPI (the hot routes name this one): a 404 from here."""
    arrived = time.perf_counter()
    services = request.app.state.services
    answer = await infer(services, request.headers, request.receive, arrived, request.path_params)
    return Response(answer, media_type="application/json")
