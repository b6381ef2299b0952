"""A whole response in one socket write, for the hot routes under uvicorn's httptools protocol.

ASGI sends a response as two messages, and uvicorn's httptools protocol writes each at once: the
status line and headers, then the body, two ``write`` calls and two TCP segments with Nagle off, so the
client wakes twice per answer. For a response whose body is known up front, :func:`send_whole` does what
those two ``send`` calls do (uvicorn 0.55, ``RequestResponseCycle.send``: its default headers, the
``connection: close`` it adds, its flags, the keep-alive and pipelining hand-off) with one write. With
any other server or protocol (h11, tests over httpx's ASGI transport) it sends the two messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle  # uvicorn[standard]


async def send_whole(send: Send, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> None:
    """Answer ``status`` with ``headers`` (content-length among them) and ``body``."""
    cycle = getattr(send, "__self__", None)
    if (
        type(cycle) is not RequestResponseCycle
        or cycle.response_started
        or cycle.access_log  # uvicorn's send writes the access log line
    ):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    content = [STATUS_LINE[status]]
    for name, value in (*cycle.default_headers, *headers):
        content += (name, b": ", value, b"\r\n")
    if not cycle.keep_alive:
        content.append(b"connection: close\r\n")
    content += (b"\r\n", body)
    cycle.transport.write(b"".join(content))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
