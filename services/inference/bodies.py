"""Reading and checking request bodies by hand: strict JSON (orjson refuses NaN and Infinity), a size
limit, and messages that name the field and the rule. Hand-written rather than pydantic-validated per
request because it is the hot path, and because the messages come from the shared feature schema.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from services.common.features import FEATURE_NAMES, FEATURES, row_problems
from services.inference.batcher import Matrix
from services.inference.errors import InvalidInput, NotJson, TooLarge, WrongContentType

MAX_PROBLEMS = 20  # a 1000-row batch of garbage answers with the first few reasons, not a novel
BYTES_PER_ROW = 1024  # a row with long decimals and spaces is ~300 bytes: generous room
MAX_PRICE_USD = 100_000_000.0
_BOUNDS = tuple((feature.name, feature.minimum, feature.maximum) for feature in FEATURES)


def body_limit(max_batch: int) -> int:
    """The largest body a request may have: room for ``max_batch`` generous rows."""
    return 4096 + max_batch * BYTES_PER_ROW


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json(
    headers: Mapping[str, str], receive: Receive, max_bytes: int, *, default_type: str = ""
) -> object:
    """The JSON body of a request, read from its ASGI ``receive`` (``default_type`` stands for a
    missing Content-Type).

    Raises:
        WrongContentType: the Content-Type is not JSON.
        TooLarge: the body is longer than ``max_bytes``.
        NotJson: the body does not parse as strict JSON.
        ClientDisconnect: the client left before sending the whole body.
    """
    content_type = headers.get("content-type", default_type)
    if not _is_json(content_type):
        raise WrongContentType(
            f"Content-Type must be application/json, got {content_type or 'none'}",
            ["Content-Type: must be application/json"],
        )
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        body += message.get("body", b"")
        if len(body) > max_bytes:  # stop reading: a huge body is refused, not buffered
            raise TooLarge(
                f"the body is larger than {max_bytes} bytes",
                [f"body: at most {max_bytes} bytes (PREDICT_MAX_BATCH rows of about {BYTES_PER_ROW} bytes)"],
            )
        if not message.get("more_body", False):
            break
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise NotJson(
            f"the body is not valid JSON ({error}); NaN and Infinity are not JSON numbers",
            [f"body: must be JSON ({error})"],
        ) from None


def _plain_row(row: object) -> list[float] | None:
    """The row's values in schema order when it is exactly the 8 features, each a plain in-range number;
    None otherwise, and ``row_problems`` then names what is wrong.

    The common case, checked without building a message per feature: with the full check it was
    ~5 % of the event loop's busy samples under wrk -c16 (py-spy, logging on). NaN fails the range test,
    infinity too; bools are not ``int`` by ``type``.
    """
    if type(row) is not dict or len(row) != len(_BOUNDS):
        return None
    values: list[float] = []
    for name, low, high in _BOUNDS:
        value = row.get(name)
        if (type(value) is not float and type(value) is not int) or not low <= value <= high:
            return None
        values.append(value)
    return values


def plain_values(values: Sequence[object]) -> bool:
    """True when ``values`` are the 8 features in schema order, each a plain in-range number (a V2
    tensor's row): the same test as :func:`_plain_row`, without naming what is wrong."""
    if len(values) != len(_BOUNDS):
        return False
    for value, (_, low, high) in zip(values, _BOUNDS, strict=True):
        if (type(value) is not float and type(value) is not int) or not low <= value <= high:
            return False
    return True


@dataclass(frozen=True)
class PredictInput:
    matrix: Matrix
    batch: bool


def parse_predict(payload: object, max_batch: int) -> PredictInput:
    """One row of the 8 features, or ``{"instances": [rows]}`` with 1 to ``max_batch`` rows.

    Raises:
        InvalidInput: naming each field and the rule it breaks (at most MAX_PROBLEMS of them).
    """
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"the body must be a JSON object with the features {', '.join(FEATURE_NAMES)}, "
            'or {"instances": [...]} with such objects',
            [f"body: must be an object, got {type(payload).__name__}"],
        )
    if "instances" not in payload:
        values = _plain_row(payload)
        if values is not None:
            return PredictInput(np.array([values], dtype=np.float64), False)
        problems = row_problems(payload)
        if problems:
            raise InvalidInput("the row is not a valid house: " + "; ".join(problems), problems)
        return PredictInput(np.array([[payload[name] for name in FEATURE_NAMES]], dtype=np.float64), False)

    problems = [f"{key}: not allowed beside instances" for key in payload if key != "instances"]
    instances = payload["instances"]
    if not isinstance(instances, list):
        problems.append(f"instances: must be a list of rows, got {type(instances).__name__}")
    elif not 1 <= len(instances) <= max_batch:
        problems.append(
            f"instances: must hold 1 to {max_batch} rows (PREDICT_MAX_BATCH), got {len(instances)}"
        )
    elif not problems and None not in (plain := [_plain_row(row) for row in instances]):
        return PredictInput(np.array(plain, dtype=np.float64), True)
    else:
        for index, row in enumerate(instances):
            if not isinstance(row, dict):
                problems.append(
                    f"instances[{index}]: must be an object with the features, got {type(row).__name__}"
                )
            else:
                problems.extend(f"instances[{index}].{problem}" for problem in row_problems(row))
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise InvalidInput(
            "the batch is not valid: " + "; ".join(problems[:MAX_PROBLEMS]), problems[:MAX_PROBLEMS]
        )
    assert isinstance(instances, list)
    matrix = np.array([[row[name] for name in FEATURE_NAMES] for row in instances], dtype=np.float64)
    return PredictInput(matrix, True)


@dataclass(frozen=True)
class FeedbackInput:
    prediction_id: uuid.UUID
    actual_price_usd: float


def parse_feedback(payload: object) -> FeedbackInput:
    """``{"prediction_id": uuid, "actual_price_usd": number >= 0}`` and nothing else.

    Raises:
        InvalidInput: naming each field and the rule it breaks.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput(
            'the body must be {"prediction_id": "<uuid>", "actual_price_usd": <number>}',
            [f"body: must be an object, got {type(payload).__name__}"],
        )
    problems = [
        f"{key}: not a field (expected prediction_id, actual_price_usd)"
        for key in payload
        if key not in {"prediction_id", "actual_price_usd"}
    ]
    prediction_id: uuid.UUID | None = None
    raw_id = payload.get("prediction_id")
    if "prediction_id" not in payload:
        problems.append("prediction_id: is missing")
    elif not isinstance(raw_id, str):
        problems.append(f"prediction_id: must be a UUID string, got {type(raw_id).__name__}")
    else:
        try:
            prediction_id = uuid.UUID(raw_id)
        except ValueError:
            problems.append(f"prediction_id: must be a UUID (as /predict returns it), got {raw_id[:64]!r}")
    price = payload.get("actual_price_usd")
    if "actual_price_usd" not in payload:
        problems.append("actual_price_usd: is missing")
    elif isinstance(price, bool) or not isinstance(price, int | float):
        problems.append(f"actual_price_usd: must be a number (USD), got {type(price).__name__}")
    elif not math.isfinite(float(price)) or not 0 <= float(price) <= MAX_PRICE_USD:
        problems.append(f"actual_price_usd: must be between 0 and {MAX_PRICE_USD:.0f} (USD), got {price}")
    if problems or prediction_id is None:
        raise InvalidInput("the feedback is not valid: " + "; ".join(problems), problems)
    return FeedbackInput(prediction_id, float(price))  # type: ignore[arg-type]
