"""The inference API: ``create_app`` wires the model holder, the micro-batcher and the prediction writer.

Nothing happens at import or in ``create_app`` beyond building objects: threads start, the spool
folder is locked and the feedback pool connects in the lifespan; on shutdown (SIGTERM, after uvicorn
has answered the requests in flight) the writer drains.

The scoring routes (``/predict``, V2 infer, ``/invocations``) are answered by ``hot_path`` ahead of
FastAPI; FastAPI declares them too (for ``/docs``) and serves every other route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import orjson
import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from mlflow.tracking import MlflowClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout
from starlette.responses import Response
from starlette.types import Receive

from services.common.database import create_pool, first_line
from services.common.vocabulary import Role
from services.inference import mlflow_scoring, open_inference
from services.inference.bodies import parse_feedback, parse_predict, read_json
from services.inference.deps import ServicesDep, feedback_authorized
from services.inference.errors import NO_MODEL, Unavailable, install_handlers
from services.inference.feedback import record_feedback
from services.inference.hot_path import Handler, HotRoute, ScoringApp
from services.inference.metrics import Metrics
from services.inference.metrics_middleware import MetricsMiddleware
from services.inference.model_holder import ModelHolder
from services.inference.page import index_page
from services.inference.parts import Services, build_services
from services.inference.responses import JsonResponse
from services.inference.schemas import (
    FeedbackRecorded,
    ModelInfo,
    Prediction,
    Predictions,
    Status,
    errors,
    feedback_body,
    predict_body,
)
from services.inference.settings import InferenceSettings
from services.inference.writer import PredictionWriter

log = logging.getLogger(__name__)


def create_app(
    settings: InferenceSettings,
    *,
    database_url: str,
    client: MlflowClient,
    metrics: Metrics | None = None,
    holder: ModelHolder | None = None,
    writer: PredictionWriter | None = None,
) -> FastAPI:
    """The FastAPI app serving ``@champion``; start it with uvicorn (``housing serve``).

    Args:
        settings: the inference settings.
        database_url: Postgres holding ``predictions`` and ``feedback``.
        client: the MLflow registry.
        metrics, holder, writer: parts to use instead of building them from settings (tests).
    """
    services = build_services(
        settings, database_url=database_url, client=client, metrics=metrics, holder=holder, writer=writer
    )
    app = ScoringApp(
        title="Cali Housing inference",
        version="1",
        description="Predicts California median house values with the `@champion` model of the MLflow "
        "registry, logs every prediction, and takes the true prices later on /feedback.",
        lifespan=partial(_lifespan, services),
    )
    app.state.services = services
    install_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    score_predict: Handler = partial(_score_predict, services)
    _serve_hot(app, services, score_predict)
    _predict_route(app, settings.predict_max_batch, score_predict)
    _feedback_route(app)
    _status_routes(app)
    # The protocols other clients already speak, over the same batcher, writer and holder as /predict.
    app.include_router(open_inference.router(settings.predict_max_batch))
    app.include_router(mlflow_scoring.router(settings.predict_max_batch))
    return app


@asynccontextmanager
async def _lifespan(services: Services, app: FastAPI) -> AsyncIterator[None]:
    if services.settings.feedback_token is None:
        log.warning(
            "FEEDBACK_TOKEN is not set: POST /feedback is open to anyone who can reach this server, and"
            " feedback drives the live error, the rollback and the next training set; set it outside"
            " development"
        )
    services.writer.start()
    if services.shadow is not None:
        services.shadow.start()
    services.holder.start()
    services.pool = create_pool(services.database_url, min_size=1, max_size=4, name="feedback")
    try:
        yield
    finally:
        services.holder.stop()
        services.batcher.close()
        if services.shadow is not None:
            services.shadow.stop()
        await asyncio.to_thread(services.writer.stop)  # says where every row went
        services.pool.close()


async def _score_predict(
    services: Services, headers: Mapping[str, str], receive: Receive, arrived: float, _: Mapping[str, str]
) -> bytes:
    """The answer to one /predict request (``arrived``: perf_counter at arrival)."""
    payload = await read_json(headers, receive, services.max_body)
    parsed = parse_predict(payload, services.settings.predict_max_batch)
    scored = await services.batcher.score(parsed.matrix, arrived)
    if not parsed.batch:  # the common case, without the list
        return orjson.dumps(
            {
                "predicted_price_usd": round(scored.prices_usd[0], 2),
                "prediction_id": str(scored.ids[0]),
                "model_version": scored.version,
            }
        )
    items = [
        {
            "predicted_price_usd": round(price, 2),
            "prediction_id": str(pid),
            "model_version": scored.version,
        }
        for price, pid in zip(scored.prices_usd, scored.ids, strict=True)
    ]
    return orjson.dumps({"predictions": items})


def _serve_hot(app: ScoringApp, services: Services, score_predict: Handler) -> None:
    """The scoring routes of the three protocols, answered ahead of FastAPI (``hot_path``)."""
    infer = partial(open_inference.infer, services)
    app.serve_hot(
        services.metrics,
        HotRoute("/predict", score_predict),
        HotRoute(open_inference.INFER_PATH, infer, open_inference.error_keys, open_inference.INFER_ROUTE),
        HotRoute(
            open_inference.VERSION_INFER_PATH,
            infer,
            open_inference.error_keys,
            open_inference.VERSION_INFER_ROUTE,
        ),
        HotRoute(
            mlflow_scoring.INVOCATIONS_PATH,
            partial(mlflow_scoring.invocations, services),
            mlflow_scoring.error_keys,
        ),
    )


def _predict_route(app: FastAPI, max_batch: int, score_predict: Handler) -> None:
    @app.post(
        "/predict",
        summary="Predict the price of one house, or of a batch",
        openapi_extra={"requestBody": predict_body(max_batch)},
        responses={
            200: {
                "model": Prediction | Predictions,
                "description": "One prediction, or `predictions` for a batch.",
            },
            **errors(400, 413, 415, 422, 503),
        },
    )
    async def predict(request: Request) -> Response:
        """Score one row of the 8 features, or `{"instances": [...]}`; every prediction is logged.

        Served by ``hot_path`` ahead of FastAPI; this route describes it (and answers the same).
        """
        answer = await score_predict(request.headers, request.receive, time.perf_counter(), {})
        return Response(answer, media_type="application/json")


def _feedback_route(app: FastAPI) -> None:
    @app.post(
        "/feedback",
        summary="Record the true price of a served prediction",
        openapi_extra={"requestBody": feedback_body()},
        responses={200: {"model": FeedbackRecorded}, **errors(400, 401, 403, 404, 409, 413, 415, 422, 503)},
        dependencies=[Depends(feedback_authorized)],  # the token before the body is read
    )
    async def feedback(request: Request, services: ServicesDep) -> Response:
        """Ground truth for a prediction_id (idempotent; bearer token when FEEDBACK_TOKEN is set)."""
        given = parse_feedback(await read_json(request.headers, request.receive, 4096))
        pool = services.pool
        if pool is None:
            raise Unavailable("the server is starting")

        def store() -> str:
            with pool.connection(timeout=5) as conn:
                return record_feedback(conn, given.prediction_id, given.actual_price_usd, services.recent)

        try:
            status = await asyncio.to_thread(store)
        except (PoolTimeout, psycopg.OperationalError) as error:  # down, or stuck past the statement timeout
            raise Unavailable(
                f"Postgres is unavailable ({first_line(error)}); send the feedback again later",
                headers={"Retry-After": "5"},
            ) from error
        return JsonResponse(
            {
                "prediction_id": str(given.prediction_id),
                "actual_price_usd": given.actual_price_usd,
                "status": status,
            }
        )


def _status_routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=Status, summary="Alive")
    async def healthz() -> Response:
        """The process answers (it may not have a model yet: see /readyz)."""
        return JsonResponse({"status": "ok"})

    @app.get("/readyz", response_model=Status, responses=errors(503), summary="Ready to predict")
    async def readyz(services: ServicesDep) -> Response:
        """200 once a champion is loaded; 503 with what to do before."""
        served = services.holder.champion
        if served is None:
            detail = NO_MODEL
            refused = services.holder.refused.get(Role.CHAMPION)
            if refused is not None:
                detail = (
                    f"model version {refused.version} refused: {refused.reason}; no earlier champion to serve"
                )
            elif services.holder.last_error:
                detail = f"the model registry failed: {services.holder.last_error}"
            return JsonResponse({"detail": detail, "problems": []}, 503, headers={"Retry-After": "10"})
        return JsonResponse({"status": "ready", "model_version": served.version})

    @app.get("/model", response_model=ModelInfo, responses=errors(503), summary="The served model")
    async def model(services: ServicesDep) -> Response:
        """Version, run id, load time and training figures of the champion (and the shadow challenger)."""
        holder = services.holder
        served = holder.champion
        refused = [refusal.describe() for refusal in holder.refused.values()]
        if served is None:
            problems = [f"model version {r['version']} refused: {r['reason']}" for r in refused]
            return JsonResponse({"detail": NO_MODEL, "problems": problems, "refused": refused}, 503)
        challenger = holder.challenger
        return JsonResponse(
            {
                **served.describe(),
                "challenger": challenger.describe() if challenger is not None else None,
                "registry_error": holder.last_error,
                "refused": refused,
                "last_poll_at": holder.last_poll_at.isoformat() if holder.last_poll_at else None,
            }
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(services: ServicesDep) -> Response:
        """The Prometheus text exposition of this server's metrics."""
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    page = index_page()

    @app.get("/", response_class=HTMLResponse, summary="A page to try the model", include_in_schema=False)
    async def index() -> HTMLResponse:
        """Type the features, see a price."""
        return HTMLResponse(page)
