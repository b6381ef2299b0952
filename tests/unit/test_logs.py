"""The JSON log format and the request ids the inference server gives each request."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from services.common.logs import REQUEST_ID, JsonFormatter
from services.inference.request_ids import request_id


def _record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("services.x", logging.WARNING, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def test_a_record_is_one_json_line_with_the_request_id_of_its_context() -> None:
    formatter = JsonFormatter()

    async def in_request(rid: str) -> str:
        REQUEST_ID.set(rid)
        await asyncio.sleep(0)  # another request's task runs meanwhile
        return formatter.format(_record("scored %d rows\nof %s", 3, "a batch"))

    async def both() -> tuple[str, str]:
        return await asyncio.gather(in_request("a"), in_request("b"))

    first, second = asyncio.run(both())
    outside = json.loads(formatter.format(_record("no request")))
    assert "\n" not in first
    line = json.loads(first)
    assert line["message"] == "scored 3 rows\nof a batch"
    assert (line["level"], line["logger"], line["request_id"]) == ("WARNING", "services.x", "a")
    assert line["time"].endswith("+00:00")
    assert json.loads(second)["request_id"] == "b"
    assert "request_id" not in outside


def test_an_exception_goes_into_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
    line = json.loads(JsonFormatter().format(_record("failed", exc_info=info)))
    assert "ValueError: boom" in line["exception"]


def test_a_valid_request_id_is_kept_and_anything_else_replaced() -> None:
    def rid(*values: bytes) -> str:
        return request_id({"headers": [(b"host", b"x"), *((b"x-request-id", v) for v in values)]})

    uuid = "4f1c2b9e-8a57-4e0e-9d8e-2f1f6b0f6a11"
    assert rid(uuid.encode()) == uuid
    assert rid(b"Root=1-67891233-abcdef012345678912345678") == "Root=1-67891233-abcdef012345678912345678"
    made = {rid(), rid(b""), rid(b"two words"), rid(b'"quoted"'), rid(b"x" * 129), rid(b"\xff\xfe")}
    assert len(made) == 6  # each one new
    assert all(value.count("-") == 1 and len(value) < 40 for value in made)
