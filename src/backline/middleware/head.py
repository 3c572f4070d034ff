"""HEAD for every GET route (RFC 9110 §9.3.2): the GET runs, its headers go out, its body not.

FastAPI, unlike Starlette's plain routes, answers HEAD with 405; load balancers and uptime
checkers probe with HEAD.

The application sees a copy of the request's scope with the method GET. The server's own scope
keeps HEAD: the server reads it to know that the response has headers and no body (without it,
a `Content-Length` promises bytes that never come and the connection is dropped). What routing
adds to the copy (the matched route, for the access log and metrics) is copied back before the
response starts and again at the end. A route that would do real work for a body nobody
receives (reading a stored object) asks `is_head(scope)`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEAD_KEY = "backline.head"


def is_head(scope: Scope) -> bool:
    """Whether this GET is really a HEAD: only its headers will be sent."""
    return bool(scope.get(_HEAD_KEY))


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        inner = {**scope, "method": "GET", _HEAD_KEY: True}

        def copy_back() -> None:
            scope.update((k, v) for k, v in inner.items() if k not in ("method", _HEAD_KEY))

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                copy_back()
            elif message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(inner, receive, send_headers_only)
        finally:
            copy_back()
