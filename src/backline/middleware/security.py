"""Security headers on every response.

* `X-Content-Type-Options: nosniff`, `Referrer-Policy` (a route may set a stricter one, such as
  `no-referrer` on pages whose URL carries a token), `Cross-Origin-Opener-Policy`.
* A Content-Security-Policy: a strict page policy on HTML (scripts and styles from this origin
  only), `default-src 'none'` on everything else, `frame-ancestors 'none'` on both. The
  interactive API docs load Swagger UI from its CDN and get a policy that allows exactly that.
* `Strict-Transport-Security` in production.
* `Cache-Control: no-store` on API responses unless the route chose a policy: they carry
  personal data and tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    "worker-src blob:; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=63072000; includeSubDomains"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.hsts = hsts
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                if path in self.docs_paths:
                    csp = DOCS_CSP
                elif headers.get("content-type", "").startswith("text/html"):
                    csp = HTML_CSP
                else:
                    csp = API_CSP
                headers.setdefault("Content-Security-Policy", csp)
                if path.startswith("/api/"):
                    headers.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
