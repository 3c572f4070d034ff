"""Request IDs: accept a sane `X-Request-ID` or make one, bind it to the logs, return it.

The ID is bound to structlog's context for the whole request (so every log line and every
outbound call carries it) and set on every response, errors and 404s included. An exception
that escapes the application after its 500 was sent is swallowed here: it was already logged
with its traceback by the error handler, and the server need not log it twice.

The same pass over the request's headers notes whether it has a body (a `Content-Length` other
than 0, or a `Transfer-Encoding`). A response that starts before that body was read to its end
(a 413 past the limit, an upload refused at once) says `Connection: close`: the server will not
read the rest, so the connection cannot carry another request, and a client must not reuse it.
uvicorn then closes it; Granian (hyper) would close it too, but says so only when it has
already given up on the body as the response starts, so that a client reusing it sometimes saw
it drop without an answer.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline import errorreports
from backline.context import REQUEST_ID_HEADER, accept_request_id

_NAME = REQUEST_ID_HEADER.lower().encode()
_CONNECTION = b"connection"
_CLOSE = (_CONNECTION, b"close")


def _presented(scope: Scope) -> tuple[str | None, bool]:
    """The request's first `X-Request-ID`, as `Headers(scope=scope).get` would find it, and
    whether a body follows its headers."""
    presented: str | None = None
    body = False
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == _NAME:
            if presented is None:
                presented = str(value.decode("latin-1"))
        elif lowered == b"content-length":
            body = body or value.strip() not in (b"0", b"")
        elif lowered == b"transfer-encoding":
            body = True
    return presented, body


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

        presented, unread = _presented(scope)
        request_id = accept_request_id(presented)
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("latin-1")
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = _with_id(message.get("headers", []), encoded)
                if unread and not any(name.lower() == _CONNECTION for name, _ in headers):
                    headers.append(_CLOSE)
                message["headers"] = headers
            await send(message)

        async def receive_body() -> Message:
            nonlocal unread
            message = await receive()
            if not message.get("more_body", False):  # the last of the body, or a disconnect
                unread = False
            return message

        # A fresh logging context per request: nothing bound by an earlier request on the same
        # task (the user ID, say) may leak into this one.
        outer = structlog.contextvars.get_contextvars()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            with errorreports.request_scope(request_id):
                await self.app(scope, receive_body if unread else receive, send_with_id)
        except Exception:
            if not started:
                raise
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**outer)
