"""A stand-in OpenAI-compatible provider for the chat benchmark: every streamed answer is
BENCH_CHAT_TOKENS chunks, BENCH_CHAT_GAP seconds apart, then usage and `[DONE]`.

A raw ASGI app (no framework), so that what it costs is as little as it can be and the same
for the direct calls and the ones through Backline.
"""

from __future__ import annotations

import asyncio
import json
import os

from starlette.types import Receive, Scope, Send

CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n'
)
USAGE = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"bench",'
    b'"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":200,"total_tokens":250}}\n\n'
)


def create_app() -> object:
    tokens = int(os.environ.get("BENCH_CHAT_TOKENS", "200"))
    gap = float(os.environ.get("BENCH_CHAT_GAP", "0"))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        more = True
        body = b""
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        json.loads(body)
        headers = [(b"content-type", b"text/event-stream"), (b"x-request-id", b"bench-up")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index in range(tokens):
            if index and gap:
                await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": USAGE, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app
