"""The servers ``benchmarks.serving`` compares, besides ``housing serve`` and ``mlflow models serve``.

- ``noop``: a FastAPI endpoint that reads and parses the same body and answers a constant (the HTTP
  ceiling of the machine).
- ``asgi``: the same no-op as a bare ASGI app (no framework): the ceiling of a route answered in front
  of FastAPI's stack, as ``/predict`` is (``services.inference.hot_path``).
- ``nolog``: this service with a writer that discards rows (what logging costs).

Run as ``python -m benchmarks.serving_apps noop|asgi|nolog PORT``; uvicorn runs as ``housing serve`` runs it.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")


def noop_app():  # type: ignore[no-untyped-def]
    import orjson
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    app = FastAPI()
    answer = orjson.dumps({"predicted_price_usd": 452600.0, "prediction_id": "0", "model_version": 0})

    async def predict(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(answer, media_type="application/json")

    # Annotations are strings here (PEP 563) and Request is local: register without FastAPI reading them.
    predict.__annotations__ = {"request": Request, "return": Response}
    app.post("/predict")(predict)

    return app


def asgi_app():  # type: ignore[no-untyped-def]
    import orjson

    answer = orjson.dumps({"predicted_price_usd": 452600.0, "prediction_id": "0", "model_version": 0})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":  # lifespan: nothing to start
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            orjson.loads(body)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def nolog_app():  # type: ignore[no-untyped-def]
    import mlflow
    from mlflow.tracking import MlflowClient

    from services.common.connections import database_url, tracking_uri
    from services.inference.app import create_app
    from services.inference.metrics import Metrics
    from services.inference.rows import PredictionRow
    from services.inference.settings import InferenceSettings
    from services.inference.spool import Spool
    from services.inference.writer import PredictionWriter

    class DiscardingWriter(PredictionWriter):
        def put(self, rows: list[PredictionRow]) -> None:
            pass

    settings = InferenceSettings()
    url = database_url(settings)
    uri, _ = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    metrics = Metrics()
    writer = DiscardingWriter(url, Spool(settings.spool_folder, max_bytes=0), metrics)
    return create_app(
        settings,
        database_url=url,
        client=MlflowClient(tracking_uri=uri, registry_uri=uri),
        metrics=metrics,
        writer=writer,
    )


def main() -> None:
    import uvicorn

    kind, port = sys.argv[1], int(sys.argv[2])
    app = {"noop": noop_app, "asgi": asgi_app, "nolog": nolog_app}[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
