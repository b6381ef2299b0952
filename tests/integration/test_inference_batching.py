"""Concurrent requests share model calls and still each get their own answer and log row.

A real uvicorn server, the session's champion (compiled trees), a real Postgres. Bursts of requests sent
at once are coalesced by the micro-batcher: small batches are scored on the event loop, batches over
``INLINE_MAX_ROWS`` rows on the predict thread. Whichever path a request took, its price must equal the
price the same row gets alone, and every row must be logged once under its own id.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from services.inference.batcher import INLINE_MAX_ROWS
from tests.conftest import Registry
from tests.integration.test_inference_support import ROW, count, make_app, serving, settings_for, wait_for

pytestmark = pytest.mark.timeout(300)  # includes training the session champion

MULTI_ROWS = 10  # two such requests together exceed INLINE_MAX_ROWS: the predict thread scores them


def _rows(offset: int, n: int) -> list[dict[str, float]]:
    return [{**ROW, "MedInc": 1.5 + 0.05 * (offset + i)} for i in range(n)]


def _calls(metrics: str) -> tuple[float, float, float]:
    """predict_batch_rows: (model calls, calls of one row, calls of at most INLINE_MAX_ROWS rows)."""
    buckets = dict(re.findall(r'predict_batch_rows_bucket\{le="([^"]+)"\} (\S+)', metrics))
    return float(buckets["+Inf"]), float(buckets["1.0"]), float(buckets[f"{float(INLINE_MAX_ROWS)}"])


async def _burst(url: str, bodies: list[object]) -> list[dict[str, object]]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        answers = await asyncio.gather(*(http.post("/predict", json=body) for body in bodies))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    return [a.json() for a in answers]


def test_concurrent_requests_are_coalesced_and_each_gets_its_own_answer(
    champion_registry: Registry, database_url: str, tmp_path: Path
) -> None:
    singles = _rows(0, 48)
    multis = [_rows(100 + 20 * i, MULTI_ROWS) for i in range(8)]
    with (
        serving(make_app(settings_for(tmp_path), database_url, champion_registry.uri)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        wait_for(lambda: http.get("/readyz").status_code == 200, message="readyz")
        alone = {
            row["MedInc"]: http.post("/predict", json=row).json()["predicted_price_usd"] for row in singles
        }
        for rows in multis:
            items = http.post("/predict", json={"instances": rows}).json()["predictions"]
            for row, item in zip(rows, items, strict=True):
                alone[row["MedInc"]] = item["predicted_price_usd"]
        logged = len(singles) + len(multis) * MULTI_ROWS
        calls, one_row, small = _calls(http.get("/metrics").text)
        assert calls == one_row + len(multis)  # one request a call so far

        def burst(bodies: list[object]) -> None:
            nonlocal logged
            answers = asyncio.run(_burst(server.url, bodies))
            for body, answer in zip(bodies, answers, strict=True):
                rows = body["instances"] if isinstance(body, dict) and "instances" in body else [body]
                items = answer.get("predictions", [answer])
                assert isinstance(items, list) and isinstance(rows, list)
                assert [item["predicted_price_usd"] for item in items] == [alone[r["MedInc"]] for r in rows]
                ids.extend(str(item["prediction_id"]) for item in items)
                logged += len(rows)

        ids: list[str] = []
        # Twelve one-row requests at once: a call of several of them (at most 12 rows) is scored on the
        # event loop. Until one such call happened: nearly always the first burst.
        for _ in range(10):
            burst(list(singles[:12]))
            now_calls, now_one_row, now_small = _calls(http.get("/metrics").text)
            if now_small - now_one_row > small - one_row:
                break
        else:
            pytest.fail("twelve requests sent at once never shared a model call in ten bursts")
        # Every request at once: calls of more than INLINE_MAX_ROWS rows go to the predict thread.
        for _ in range(5):
            burst([*singles, *({"instances": rows} for rows in multis)])
            now_calls, _, now_small = _calls(http.get("/metrics").text)
            if now_calls - now_small > calls - small:
                break
        else:
            pytest.fail("the requests sent at once never made a call past INLINE_MAX_ROWS in five bursts")
        assert len(set(ids)) == len(ids)

        wait_for(lambda: count(database_url) == logged, timeout=20, message=f"{logged} rows logged")
        assert count(database_url, "SELECT count(DISTINCT id) FROM predictions") == logged
