"""HEAD for every GET route (RFC 9110 §9.3.2): the GET runs, its headers go out, its body not.

FastAPI, unlike Starlette's plain routes, answers HEAD with 405; load balancers and uptime
checkers probe with HEAD.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        scope["method"] = "GET"  # in place, so outer middleware still sees the matched route
        await self.app(scope, receive, send_headers_only)
