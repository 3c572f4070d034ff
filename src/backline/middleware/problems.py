"""A last guard that every error response is `application/problem+json`.

Backline's handlers already answer problems; a few responses are made deeper in the framework
without them (Starlette's 413 when a handler answered before reading an oversized body, CORS's
refusal of a preflight). This middleware swaps the body of any error response that is neither a
problem nor an HTML page for the problem of the same status, keeping its other headers.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline.errors import PROBLEM_JSON, PayloadTooLarge, problem_body, problem_of

_KEEP_AS_IS = (PROBLEM_JSON, "text/html", "text/event-stream")


def _problem_for(status: int, scope: Scope) -> dict[str, Any]:
    if status == 413:  # the framework's own refusal of a body over its limit
        return problem_of(PayloadTooLarge(scope.get(MAX_BODY_SIZE_SCOPE_KEY)))
    return problem_body(status)


def _render(problem: dict[str, Any]) -> bytes:
    """Encoded as every other problem is (JSONResponse's compact JSON)."""
    return bytes(JSONResponse(problem).body)


def _content_type(start: Message) -> str:
    return Headers(raw=start.get("headers", [])).get("content-type", "")


class ProblemGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                status: int = message["status"]
                if status >= 400 and not _content_type(message).startswith(_KEEP_AS_IS):
                    replaced = True
                    body = _render(_problem_for(status, scope))
                    start: Message = {"type": "http.response.start", "status": status}
                    start["headers"] = list(message.get("headers", []))
                    headers = MutableHeaders(scope=start)
                    headers["content-type"] = PROBLEM_JSON
                    headers["content-length"] = str(len(body))
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                    return
            elif message["type"] == "http.response.body" and replaced:
                return
            await send(message)

        await self.app(scope, receive, guarded_send)
