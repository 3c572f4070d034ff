"""Starlette's CORS middleware with a short way for the requests most of them are: those
without an `Origin` header (API clients, same-origin page loads, health checks).

Starlette answers those exactly as this does: the response goes out with `Origin` added to its
`Vary` header (a cache must not serve it to a cross-origin request) and nothing else changed.
It builds the request's headers and wraps the response's in objects first; this scans them
once. Requests with an `Origin` (preflights and cross-origin requests) take Starlette's way.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

_ORIGIN = b"origin"
_VARY = b"vary"


def _has_origin(scope: Scope) -> bool:
    return any(name.lower() == _ORIGIN for name, _ in scope["headers"])


def _vary_on_origin(message: Message) -> None:
    raw: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    message["headers"] = raw
    if any(name.lower() == _VARY for name, _ in raw):
        headers = MutableHeaders(scope=message)  # merged into one, as Starlette does
        headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
    else:
        raw.append((_VARY, b"Origin"))


class Cors(CORSMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _has_origin(scope):
            await super().__call__(scope, receive, send)
            return

        async def send_varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                _vary_on_origin(message)
            await send(message)

        await self.app(scope, receive, send_varying)
