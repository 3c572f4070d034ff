"""The streamed answer: server-sent events relayed from the provider, under the chat's own limits.

Events, each `event:` + one JSON `data:` line:

    event: delta   {"text": "..."}                 as the provider sends text
    event: error   {"code": "...", "detail": ...}  the provider failed or timed out mid-answer
    event: done    {"conversation_id", "message_id", "state": "complete"|"cut", "usage"}

and a `: keep-alive` comment whenever the provider has been silent for BACKLINE_CHAT_KEEPALIVE
seconds, so proxies do not drop the quiet connection.

The whole-request deadline does not apply (the route lifts it); instead the first chunk must
come within BACKLINE_CHAT_FIRST_BYTE_TIMEOUT, no gap may exceed BACKLINE_CHAT_IDLE_TIMEOUT and
the whole answer must end within BACKLINE_CHAT_TOTAL_TIMEOUT. A client that disconnects, or
stops reading for longer than the idle limit, ends the relay at once: the provider's response
is closed (it sees the connection go) and what was streamed is stored, marked `cut`.

`EventStream` is written out rather than Starlette's `StreamingResponse`, which on ASGI 2.4
servers notices a disconnect only at its next write, and gives an iterator no chance to clean
up when cancelled at a `yield`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backline.logging import get_logger

log = get_logger(__name__)
Emit = Callable[[bytes], Awaitable[None]]
KEEPALIVE = b": keep-alive\n\n"


class ClientGone(Exception):
    """The client disconnected, or stopped reading."""


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventStream(Response):
    """An ASGI response that runs `produce(emit)` while watching for the client to leave."""

    media_type = "text/event-stream"

    def __init__(self, produce: Callable[[Emit], Awaitable[None]], *, send_timeout: float) -> None:
        self.produce = produce
        self.send_timeout = send_timeout
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        await send(start)

        async def emit(chunk: bytes) -> None:
            try:
                with anyio.fail_after(self.send_timeout):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (OSError, TimeoutError) as exc:
                raise ClientGone from exc

        async with anyio.create_task_group() as group:

            async def run() -> None:
                try:
                    await self.produce(emit)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except ClientGone:
                    log.info("chat_client_gone")
                finally:
                    group.cancel_scope.cancel()

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                log.info("chat_client_disconnected")
                group.cancel_scope.cancel()

            group.start_soon(run)
            group.start_soon(watch)
