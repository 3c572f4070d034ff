"""Security schemes: a bearer access token, or the browser's session cookie.

A cookie-authenticated request that changes something (any method but GET, HEAD, OPTIONS)
must also send the CSRF token in `X-CSRF-Token`, so for those the cookie scheme is paired
with the header's. The document has no global requirement: public operations carry none.
"""

from __future__ import annotations

from typing import Any

BEARER, COOKIE, CSRF = "bearerToken", "sessionCookie", "csrfHeader"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "`access_token` from POST /api/auth/login (mode token)",
    },
    COOKIE: {
        "type": "apiKey",
        "in": "cookie",
        "name": "backline_access",
        "description": "HttpOnly cookie set by POST /api/auth/login (mode cookie)",
    },
    CSRF: {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "with the session cookie on changes: the `backline_csrf` cookie's value",
    },
}


def apply_security(operation: dict[str, Any], method: str) -> None:
    cookie: dict[str, list[str]] = {COOKIE: []}
    if method.upper() not in SAFE_METHODS:
        cookie[CSRF] = []
    operation["security"] = [{BEARER: []}, cookie]


def declare_schemes(document: dict[str, Any]) -> None:
    document.setdefault("components", {})["securitySchemes"] = SCHEMES
