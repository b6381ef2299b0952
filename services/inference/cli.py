"""``housing serve``: the inference service's edge. Reads settings once, wires the real parts, runs uvicorn.

Heavy imports (MLflow, scikit-learn, FastAPI) happen inside the command so ``housing --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the champion model over HTTP (POST /predict, POST /feedback, /metrics, /readyz, /model)."""
    # HistGradientBoosting's OpenMP threads fight the server's own (a /predict at
    # concurrency 16 fell to 0-7 req/s with the default thread count); set before
    # scikit-learn loads its OpenMP runtime. The predict thread also pins itself with threadpoolctl.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import mlflow
    import uvicorn
    from mlflow.tracking import MlflowClient

    from services.common.connections import database_url, tracking_uri
    from services.common.logs import configure as configure_logs
    from services.inference.app import create_app
    from services.inference.settings import InferenceSettings

    settings = InferenceSettings()
    configure_logs(settings.log_format)
    if settings.log_format == "json":  # its download bars would break the one-object-per-line stream
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger().setLevel(settings.log_level)
    url = database_url(settings)
    uri, _ = tracking_uri(settings)
    # Artifact URIs such as mlflow-artifacts:/ resolve through the process-wide tracking URI.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    app = create_app(settings, database_url=url, client=client)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's own lines go through the root handler: LOG_FORMAT's format too
        access_log=False,  # one line per request costs more than the prediction; /metrics counts them
        lifespan="on",
        # Then the lifespan drains the writer (LOG_DRAIN_SECONDS): the two add up within the grace period.
        timeout_graceful_shutdown=int(settings.http_shutdown_seconds),
    )
