"""Request IDs: accept a sane `X-Request-ID` or make one, bind it to the logs, return it.

The ID is bound to structlog's context for the whole request (so every log line and every
outbound call carries it) and set on every response, errors and 404s included. An exception
that escapes the application after its 500 was sent is swallowed here: it was already logged
with its traceback by the error handler, and the server need not log it twice.
"""

from __future__ import annotations

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline import errorreports
from backline.context import REQUEST_ID_HEADER, accept_request_id


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
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
