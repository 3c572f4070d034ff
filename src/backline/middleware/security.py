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

# Added unless the response has its own (names lower-case, as ASGI servers and Starlette send).
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
_CSP = b"content-security-policy"
_CACHE_CONTROL = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", HSTS.encode())


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
                message["headers"] = self._with_headers(path, message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _with_headers(
        self, path: str, raw: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """The response's headers and every one of ours it does not set itself (one pass over
        its headers: this runs on every response)."""
        headers = list(raw)
        present = set()
        content_type = b""
        for name, value in headers:
            lowered = name.lower()
            present.add(lowered)
            if lowered == b"content-type" and not content_type:
                content_type = value
        headers.extend(header for header in _ALWAYS if header[0] not in present)
        if _CSP not in present:
            if path in self.docs_paths:
                csp = DOCS_CSP
            elif content_type.decode("latin-1").startswith("text/html"):
                csp = HTML_CSP
            else:
                csp = API_CSP
            headers.append((_CSP, csp.encode()))
        if path.startswith("/api/") and _CACHE_CONTROL[0] not in present:
            headers.append(_CACHE_CONTROL)
        if self.hsts and _HSTS[0] not in present:
            headers.append(_HSTS)
        return headers
