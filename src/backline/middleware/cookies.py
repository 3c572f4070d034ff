"""Cookies decided before the response exists, sent with whatever response the request ends with.

A portal page learns who is looking, and may renew their session, before its handler has built
a response: the renewed cookies must then reach the browser on the page, on a redirect, on an
error page, on a 500 or a 504 alike, or the browser keeps a refresh token that has already been
used (see `accounts.renewal`). `defer_cookies(scope, response)` records a response's Set-Cookie
headers for the request (a later call replaces an earlier one); `DeferredCookies`, wrapped
around the whole stack, adds them to the response that goes out. A cookie the response sets
itself (logging in, signing out) wins over a deferred one of the same name. A response that
carries deferred cookies is never cached.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SCOPE_KEY = "backline.deferred_cookies"


def _name(set_cookie: bytes) -> bytes:
    return set_cookie.split(b"=", 1)[0].strip()


def defer_cookies(scope: Scope, source: Response) -> bool:
    """Send `source`'s Set-Cookie headers with this request's response.

    False (and nothing will be sent) when the app runs without `DeferredCookies`.
    """
    jar: list[bytes] | None = scope.get(_SCOPE_KEY)
    if jar is None:
        return False
    jar[:] = [value for key, value in source.raw_headers if key == b"set-cookie"]
    return True


class DeferredCookies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        jar: list[bytes] = []
        scope[_SCOPE_KEY] = jar  # inner layers may copy the scope; they share the list

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and jar:
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                own = {_name(value) for key, value in raw if key.lower() == b"set-cookie"}
                raw.extend((b"set-cookie", value) for value in jar if _name(value) not in own)
                message = {**message, "headers": raw}
                MutableHeaders(scope=message)["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_cookies)
