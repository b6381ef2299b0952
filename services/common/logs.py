"""How every service writes its log: text for a terminal, or one JSON object per line for a cluster.

``LOG_FORMAT=json`` (the chart's value) makes each record one line such as
``{"time": "2026-12-06T14:00:00.123Z", "level": "WARNING", "logger": "services.inference.app",
"message": "...", "request_id": "..."}``, which a log collector parses without a pattern;
``LOG_FORMAT=text`` (the default) keeps the readable ``time level logger: message`` lines.

``request_id`` is the id of the HTTP request being served (:data:`REQUEST_ID`, a context variable the
inference server sets per request), so every line a request logs carries it; lines outside a request
have none.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

import orjson

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The id of the request this code runs for; each request runs in its own asyncio task, so it is set
# per request without leaking into the next one.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id when
    set, and the exception's traceback as ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def configure(log_format: LogFormat) -> None:
    """Send the root logger's records to stderr in ``log_format`` (its handlers replaced, levels kept;
    numba's compiler quieted)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.getLogger().handlers = [handler]
    # numba's compiler logs each bytecode of the tree walk at DEBUG as it compiles it (tens of thousands
    # of lines, seconds of a server's start at LOG_LEVEL=DEBUG): its warnings and errors only.
    logging.getLogger("numba").setLevel(logging.WARNING)
