"""The streamed answer's floor on this machine: a relay with nothing around it.

`create_app` serves `POST /api/chat` as a bare ASGI callable that does only what relaying
costs: it reads the JSON body, opens a streamed `/v1/chat/completions` call to the provider at
BENCH_CHAT_UPSTREAM with one shared httpx client, and turns each chunk's text into an
`event: delta`. Left out is all Backline does around that: middleware, authentication, limits
in Redis, the context read from the database, storing the question and the answer, the
`openai` package's request building, retries and error mapping, keep-alives and timeouts.

It is never served by Backline and exists for one comparison in `bench.chat`: the time to first
byte that any Python relay adds over calling the provider directly, on this machine, beside
what Backline adds.
"""

from __future__ import annotations

import json
import os

import httpx
from starlette.types import Receive, Scope, Send


def create_app() -> object:
    upstream = os.environ["BENCH_CHAT_UPSTREAM"]
    client = httpx.AsyncClient(timeout=30)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        question = json.loads(body)["message"]
        call = {"model": "bench", "messages": [{"role": "user", "content": question}]}
        request = client.build_request(
            "POST", f"{upstream}/chat/completions", json={**call, "stream": True}
        )
        response = await client.send(request, stream=True)
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices", ()):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        data = json.dumps({"text": text})
                        event = f"event: delta\ndata: {data}\n\n".encode()
                        await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            await response.aclose()
        await send({"type": "http.response.body", "body": b"event: done\ndata: {}\n\n"})

    return app
