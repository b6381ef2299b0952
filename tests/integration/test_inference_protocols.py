"""The Open Inference Protocol (V2) and MLflow's scoring API, spoken by clients nobody here wrote:
``tritonclient[http]`` and MLflow's ``ScoringServerClient``, against a real uvicorn server, a real
embedded Postgres and a real MLflow store. Their answers equal ``/predict``'s for the same rows, their
rows land in ``predictions`` and take ``/feedback``, and bad tensors get a 4xx naming the rule."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from services.common.features import FEATURE_NAMES
from services.common.registry import MODEL_NAME, promote
from services.common.vocabulary import Role
from tests.conftest import Registry, signed
from tests.deploy.helpers import missing
from tests.integration.test_inference_support import (
    ROW,
    Running,
    count,
    fresh_database,
    make_app,
    serving,
    settings_for,
    wait_for,
)

pytestmark = pytest.mark.timeout(300)  # includes training the session champion

TOKEN = "protocols-token-of-at-least-32-chars"
MAX_BATCH = 32


def _rows(n: int) -> list[dict[str, float]]:
    """``n`` distinct valid houses (incomes and ages vary, so the prices differ)."""
    return [{**ROW, "MedInc": 1.5 + 0.4 * i, "HouseAge": 10.0 + i} for i in range(n)]


def _matrix(rows: list[dict[str, float]]) -> np.ndarray:
    return np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=np.float64)


@pytest.fixture(scope="module")
def server(
    postgres_server: str, _champion_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Running, str]]:
    """One server for the module: a fresh database, a copy of the champion; yields it and the database."""
    folder = tmp_path_factory.mktemp("protocols")
    database_url = fresh_database(postgres_server)
    store = folder / "mlflow"
    store.mkdir()
    shutil.copy(_champion_store, store / "mlflow.db")
    app = make_app(
        settings_for(folder, predict_max_batch=MAX_BATCH, feedback_token=TOKEN),
        database_url,
        f"sqlite:///{store / 'mlflow.db'}",
    )
    with serving(app) as running:
        wait_for(lambda: running.services.holder.champion is not None, message="the champion")
        yield running, database_url


def _predict_prices(url: str, rows: list[dict[str, float]]) -> list[float]:
    answer = httpx.post(f"{url}/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    return [item["predicted_price_usd"] for item in answer.json()["predictions"]]


def _feedback(url: str, prediction_id: str, price_usd: float) -> httpx.Response:
    return httpx.post(
        f"{url}/feedback",
        json={"prediction_id": prediction_id, "actual_price_usd": price_usd},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def _triton(url: str) -> Any:
    try:
        import tritonclient.http as triton
    except ImportError:
        missing("tritonclient[http] is not installed: pip install -e '.[dev]'")
    return triton


def test_tritonclient_speaks_v2(server: tuple[Running, str]) -> None:
    running, database_url = server
    triton = _triton(running.url)
    before = count(database_url)
    client = triton.InferenceServerClient(running.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL_NAME) and client.is_model_ready(MODEL_NAME, "1")
        assert not client.is_model_ready(MODEL_NAME, "7") and not client.is_model_ready("other")
        assert client.get_server_metadata()["extensions"] == []
        metadata = client.get_model_metadata(MODEL_NAME)
        assert metadata["versions"] == ["1"]
        assert metadata["inputs"] == [
            {
                "name": "features",
                "datatype": "FP64",
                "shape": [-1, 8],
                "parameters": {"columns": list(FEATURE_NAMES)},
            }
        ]
        assert [o["name"] for o in metadata["outputs"]] == ["MedHouseVal", "prediction_id"]

        ids: list[str] = []
        for n in (1, 16):
            rows = _rows(n)
            tensor = triton.InferInput("features", [n, 8], "FP64")
            tensor.set_data_from_numpy(_matrix(rows), binary_data=False)
            result = client.infer(MODEL_NAME, [tensor], request_id=f"req-{n}")
            assert result.get_response()["id"] == f"req-{n}"
            assert result.get_response()["model_version"] == "1"
            prices = result.as_numpy("MedHouseVal")
            assert prices.shape == (n,) and prices.dtype == np.float64
            assert [round(p * 100_000, 2) for p in prices.tolist()] == _predict_prices(running.url, rows)
            got = [
                one.decode() if isinstance(one, bytes) else one for one in result.as_numpy("prediction_id")
            ]
            assert len(set(got)) == n
            ids.extend(got)

        # the versioned route, and an output asked for by name
        tensor = triton.InferInput("features", [1, 8], "FP64")
        tensor.set_data_from_numpy(_matrix(_rows(1)), binary_data=False)
        only = client.infer(
            MODEL_NAME,
            [tensor],
            model_version="1",
            outputs=[triton.InferRequestedOutput("MedHouseVal", binary_data=False)],
        )
        assert [o["name"] for o in only.get_response()["outputs"]] == ["MedHouseVal"]
        with pytest.raises(triton.InferenceServerException, match="version 7 is not served here"):
            client.infer(MODEL_NAME, [tensor], model_version="7")
        with pytest.raises(triton.InferenceServerException, match="datatype: must be FP64"):
            wrong = triton.InferInput("features", [1, 8], "INT64")
            wrong.set_data_from_numpy(np.ones((1, 8), dtype=np.int64), binary_data=False)
            client.infer(MODEL_NAME, [wrong])
        with pytest.raises(triton.InferenceServerException, match="binary tensor extension"):
            binary = triton.InferInput("features", [1, 8], "FP64")
            binary.set_data_from_numpy(_matrix(_rows(1)))  # tritonclient's default: binary
            client.infer(MODEL_NAME, [binary])
    finally:
        client.close()

    wait_for(lambda: count(database_url) == before + 16 + 16 + 1 + 1 + 1, message="V2 and /predict rows")
    assert _feedback(running.url, ids[0], 250_000.0).json()["status"] == "recorded"
    logged = f"SELECT count(*) FROM predictions WHERE id = '{ids[-1]}' AND role = '{Role.CHAMPION.value}'"
    assert count(database_url, logged) == 1
    assert count(database_url, f"SELECT count(*) FROM feedback WHERE prediction_id = '{ids[0]}'") == 1
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'route="/v2/models/{model_name}/infer",status="200"' in metrics
    assert 'route="/v2/models/{model_name}/versions/{model_version}/infer",status="404"' in metrics


def test_mlflow_scoring_server_client(server: tuple[Running, str]) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    running, database_url = server
    before = count(database_url)
    host, port = running.url.removeprefix("http://").split(":")
    client = ScoringServerClient(host, int(port))
    client.ping()
    assert client.get_version().strip() == __import__("mlflow").__version__
    rows = _rows(16)
    answer = client.invoke(pd.DataFrame(rows))
    predictions = answer.get_predictions()
    assert predictions.shape == (16, 1)
    prices = predictions.iloc[:, 0].tolist()
    assert [round(p * 100_000, 2) for p in prices] == _predict_prices(running.url, rows)
    ids = answer["prediction_ids"]
    assert len(set(ids)) == 16 and answer["model_version"] == 1

    wait_for(lambda: count(database_url) == before + 32, message="MLflow and /predict rows")
    assert _feedback(running.url, ids[3], 180_000.0).json()["status"] == "recorded"
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'http_requests_total{method="POST",route="/invocations",status="200"} 1.0' in metrics


def _invoke(url: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/invocations", json=body)


def test_every_mlflow_request_format_answers_the_same(server: tuple[Running, str]) -> None:
    running, _ = server
    rows = _rows(3)
    expected = _predict_prices(running.url, rows)
    values = [[row[name] for name in FEATURE_NAMES] for row in rows]
    shuffled = list(reversed(FEATURE_NAMES))  # columns are matched by name
    bodies = {
        "dataframe_split": {
            "dataframe_split": {
                "index": [0, 1, 2],
                "columns": shuffled,
                "data": [[row[name] for name in shuffled] for row in rows],
            }
        },
        "dataframe_records": {"dataframe_records": rows},
        "instances as objects": {"instances": rows},
        "instances as lists": {"instances": values},
        "inputs as lists": {"inputs": values},
        "inputs as columns": {"inputs": {name: [row[name] for row in rows] for name in FEATURE_NAMES}},
    }
    for name, body in bodies.items():
        answer = _invoke(running.url, body)
        assert answer.status_code == 200, (name, answer.text)
        assert [round(p * 100_000, 2) for p in answer.json()["predictions"]] == expected, name


def _tensor(**changes: object) -> dict[str, object]:
    tensor: dict[str, object] = {
        "name": "features",
        "datatype": "FP64",
        "shape": [1, 8],
        "data": [ROW[name] for name in FEATURE_NAMES],
    }
    return {"inputs": [{**tensor, **changes}]}


BAD_TENSORS: list[tuple[str, str, bytes, int, str]] = [
    ("wrong shape", "infer", json.dumps(_tensor(shape=[1, 7])).encode(), 422, "shape: must be [n, 8]"),
    ("shape 1-D", "infer", json.dumps(_tensor(shape=[8])).encode(), 422, "shape: must be [n, 8]"),
    (
        "shape disagrees with data",
        "infer",
        json.dumps(_tensor(shape=[2, 8])).encode(),
        422,
        "data: must hold the shape's 16 numbers",
    ),
    ("too many rows", "infer", json.dumps(_tensor(shape=[33, 8])).encode(), 422, "PREDICT_MAX_BATCH"),
    (
        "wrong datatype",
        "infer",
        json.dumps(_tensor(datatype="INT64")).encode(),
        422,
        "datatype: must be FP64",
    ),
    (
        "NaN",
        "infer",
        json.dumps(_tensor()).encode().replace(b"8.3252", b"NaN"),
        400,
        "NaN and Infinity are not JSON numbers",
    ),
    ("missing input", "infer", b'{"inputs": []}', 422, "inputs: must hold one tensor features"),
    ("no inputs", "infer", b'{"id": "1"}', 422, "inputs: is missing"),
    (
        "wrong input name",
        "infer",
        json.dumps(_tensor(name="input-0")).encode(),
        422,
        "name: must be features",
    ),
    (
        "out of range",
        "infer",
        json.dumps(_tensor(data=[ROW[n] if n != "Latitude" else 90.0 for n in FEATURE_NAMES])).encode(),
        422,
        "inputs[0].data[0].Latitude must be between",
    ),
    (
        "string value",
        "infer",
        json.dumps(_tensor(data=["8.3", *[ROW[n] for n in FEATURE_NAMES[1:]]])).encode(),
        422,
        "MedInc must be a number",
    ),
    (
        "unknown output",
        "infer",
        json.dumps({**_tensor(), "outputs": [{"name": "x"}]}).encode(),
        422,
        "outputs[0]",
    ),
    ("not JSON", "infer", b"inputs", 400, "not valid JSON"),
    ("other model", "other", json.dumps(_tensor()).encode(), 404, "is not served here"),
    ("other version", "v7", json.dumps(_tensor()).encode(), 404, "version 7 is not served here"),
]
_PATHS = {
    "infer": f"/v2/models/{MODEL_NAME}/infer",
    "other": "/v2/models/other/infer",
    "v7": f"/v2/models/{MODEL_NAME}/versions/7/infer",
}


@pytest.mark.parametrize(
    ("where", "body", "status", "message"),
    [case[1:] for case in BAD_TENSORS],
    ids=[case[0] for case in BAD_TENSORS],
)
def test_bad_tensors_are_4xx_naming_the_rule(
    server: tuple[Running, str], where: str, body: bytes, status: int, message: str
) -> None:
    running, _ = server
    answer = httpx.post(f"{running.url}{_PATHS[where]}", content=body)  # no Content-Type, as tritonclient
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert message in error["error"] and error["detail"] == error["error"] and error["problems"]


def test_v2_refuses_other_content_types(server: tuple[Running, str]) -> None:
    running, _ = server
    answer = httpx.post(
        f"{running.url}/v2/models/{MODEL_NAME}/infer",
        content=json.dumps(_tensor()).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]


BAD_SCORING: list[tuple[str, object, int, str]] = [
    ("no format", {"rows": [ROW]}, 422, "rows: not allowed"),
    ("two formats", {"instances": [ROW], "inputs": [ROW]}, 422, "exactly one of"),
    (
        "missing column",
        {"dataframe_records": [{k: v for k, v in ROW.items() if k != "AveRooms"}]},
        422,
        "AveRooms is missing",
    ),
    ("extra column", {"dataframe_records": [{**ROW, "Garden": 1}]}, 422, "Garden is not a feature"),
    (
        "out of range",
        {"instances": [{**ROW, "Population": -5}]},
        422,
        "instances[0].Population must be between",
    ),
    ("short list row", {"inputs": [[1.0, 2.0]]}, 422, "must hold the 8 features in order"),
    (
        "split row length",
        {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [[1.0]]}},
        422,
        "dataframe_split.data[0]: must hold 8 values",
    ),
    ("ragged columns", {"inputs": {"MedInc": [1.0], "HouseAge": [1.0, 2.0]}}, 422, "all of one length"),
    ("empty", {"instances": []}, 422, "must hold 1 to 32 rows"),
]


@pytest.mark.parametrize(
    ("body", "status", "message"), [case[1:] for case in BAD_SCORING], ids=[case[0] for case in BAD_SCORING]
)
def test_bad_scoring_requests_are_4xx_naming_the_rule(
    server: tuple[Running, str], body: object, status: int, message: str
) -> None:
    running, _ = server
    answer = _invoke(running.url, body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert message in error["message"] and error["error_code"] == "BAD_REQUEST"
    assert error["detail"] == error["message"] and error["problems"]


def _second_version(registry: Registry) -> int:
    client = registry.client
    first = client.get_model_version(MODEL_NAME, "1")
    return signed(
        client, client.create_model_version(MODEL_NAME, source=first.source, run_id=first.run_id).version
    )


def test_v2_follows_the_hot_swap(champion_registry: Registry, database_url: str, tmp_path: Path) -> None:
    with serving(make_app(settings_for(tmp_path), database_url, champion_registry.uri)) as running:
        base = f"{running.url}/v2/models/{MODEL_NAME}"
        wait_for(lambda: httpx.get(f"{base}/versions/1/ready").status_code == 200, message="v1 ready")
        promote(champion_registry.client, _second_version(champion_registry))
        wait_for(lambda: httpx.get(f"{base}/versions/2/ready").status_code == 200, message="v2 ready")
        assert httpx.get(f"{base}/versions/1/ready").status_code == 404
        assert httpx.get(base).json()["versions"] == ["2"]
        answer = httpx.post(f"{base}/infer", json=_tensor())
        assert answer.status_code == 200 and answer.json()["model_version"] == "2"
        wait_for(lambda: count(database_url) == 1, message="the V2 row logged")
