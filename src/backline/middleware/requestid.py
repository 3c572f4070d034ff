"""Request IDs: accept a sane `X-Request-ID` or make one, bind it to the logs, return it.

The ID is bound to structlog's context for the whole request (so every log line and every
outbound call carries it) and set on every response, errors and 404s included. An exception
that escapes the application after its 500 was sent is swallowed here: it was already logged
with its traceback by the error handler, and the server need not log it twice.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline import errorreports
from backline.context import REQUEST_ID_HEADER, accept_request_id

_NAME = REQUEST_ID_HEADER.lower().encode()


def _presented(scope: Scope) -> str | None:
    """The request's first `X-Request-ID`, as `Headers(scope=scope).get` would find it."""
    for name, value in scope["headers"]:
        if name.lower() == _NAME:
            return str(value.decode("latin-1"))
    return None


def _with_id(raw: list[tuple[bytes, bytes]], value: bytes) -> list[tuple[bytes, bytes]]:
    """The response's headers with ours set (in place of any of its own)."""
    return [header for header in raw if header[0].lower() != _NAME] + [(_NAME, value)]


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = accept_request_id(_presented(scope))
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("latin-1")
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_id(message.get("headers", []), encoded)
            await send(message)

        # A fresh logging context per request: nothing bound by an earlier request on the same
        # task (the user ID, say) may leak into this one.
        outer = structlog.contextvars.get_contextvars()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            with errorreports.request_scope(request_id):
                await self.app(scope, receive, send_with_id)
        except Exception:
            if not started:
                raise
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**outer)
