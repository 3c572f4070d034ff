"""A stand-in OpenAI-compatible provider on loopback, scripted per request.

A raw ASGI app under a real uvicorn server: it streams chunks (with usage at the end), stalls,
waits at a gate the test opens, answers with an error status, or cuts the connection
mid-stream, and records what it was sent and whether the caller closed the connection on it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from starlette.types import Receive, Scope, Send

UPSTREAM_SECRET = "upstream-body-secret-do-not-pass-on"


@dataclass
class Plan:
    status: int = 200
    tokens: list[str] = field(default_factory=lambda: ["Hello", ", ", "artist", "!"])
    first_delay: float = 0.0  # before the first chunk (headers are sent at once)
    gap: float = 0.0  # between chunks
    stall_after: int | None = None  # chunks sent, then silence until the caller leaves
    cut_after: int | None = None  # chunks sent, then the connection is dropped
    usage: tuple[int, int] | None = (30, 4)
    header_delay: float = 0.0  # before anything at all
    hold_headers: bool = False  # nothing sent until the caller leaves
    before: list[object] = field(default_factory=list)  # raw events sent before the tokens
    gate: Callable[[], Awaitable[object]] | None = None  # awaited before chunk `gate_at`
    gate_at: int = 0


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]


class Upstream:
    def __init__(self) -> None:
        self.plans: deque[Plan] = deque()
        self.default = Plan()
        self.seen: list[Seen] = []
        self.closed_by_caller = 0
        self.closed_event = asyncio.Event()
        self.url = ""

    def then(self, *plans: Plan) -> None:
        self.plans.extend(plans)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw or b"{}")
        self.seen.append(Seen(headers, body))
        plan = self.plans.popleft() if self.plans else self.default
        if plan.header_delay:
            await asyncio.sleep(plan.header_delay)
        if plan.hold_headers:
            await self._wait_for_caller_to_leave(receive)
            return
        if plan.status != 200:
            await self._error(send, plan.status)
        elif body.get("stream"):
            await self._stream(plan, receive, send)
        else:
            await self._whole(plan, send)

    async def _error(self, send: Send, status: int) -> None:
        payload = json.dumps({"error": {"message": UPSTREAM_SECRET, "type": "x"}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after-ms", b"10"),  # keeps the client's backoff short
                    (b"x-request-id", b"upstream-err-1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _whole(self, plan: Plan, send: Send) -> None:
        await asyncio.sleep(plan.first_delay)
        answer: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(plan.tokens)},
                    "finish_reason": "stop",
                }
            ],
        }
        if plan.usage:
            answer["usage"] = _usage(plan.usage)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"x-request-id", b"upstream-req-1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    async def _stream(self, plan: Plan, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"x-request-id", b"upstream-req-1"),
                ],
            }
        )
        await asyncio.sleep(plan.first_delay)
        for raw in plan.before:
            await send({"type": "http.response.body", "body": _raw(raw), "more_body": True})
        for index, token in enumerate(plan.tokens):
            if plan.stall_after is not None and index == plan.stall_after:
                await self._wait_for_caller_to_leave(receive)
                return
            if plan.cut_after is not None and index == plan.cut_after:
                raise ConnectionAbortedError("cut on purpose")  # uvicorn drops the connection
            if index and plan.gap:
                await asyncio.sleep(plan.gap)
            if plan.gate is not None and index == plan.gate_at:
                await plan.gate()
            await send({"type": "http.response.body", "body": _chunk(token), "more_body": True})
        if plan.stall_after is not None and plan.stall_after >= len(plan.tokens):
            await self._wait_for_caller_to_leave(receive)
            return
        if plan.usage:
            usage = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "test-model",
                "choices": [],
                "usage": _usage(plan.usage),
            }
            await send({"type": "http.response.body", "body": _data(usage), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _wait_for_caller_to_leave(self, receive: Receive) -> None:
        with anyio.move_on_after(20):  # bounded: a test that never leaves still ends
            while (await receive())["type"] != "http.disconnect":
                pass
            self.closed_by_caller += 1
            self.closed_event.set()


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _raw(value: object) -> bytes:
    return f"data: {json.dumps(value)}\n\n".encode()


def _chunk(token: str) -> bytes:
    return _data(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "test-model",
            "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}],
        }
    )


async def serve(upstream: Upstream, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        upstream,
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="critical",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded wait for the socket
        if server.started:
            break
        await asyncio.sleep(0.01)
    upstream.url = f"http://127.0.0.1:{port}/v1"
    return server, task
