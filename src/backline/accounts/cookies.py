"""The browser's session cookies: HttpOnly tokens, a readable CSRF token.

* `backline_access`: the access token, HttpOnly, for every path, as long as the token lives.
* `backline_refresh`: the refresh token, HttpOnly, sent only to `/api/auth` (path-scoped), as
  long as the session may last.
* `backline_csrf`: the session's CSRF token, readable by the page's script, which echoes it in
  `X-CSRF-Token`.

All are SameSite=Lax, and Secure everywhere but development (where the server is plain http).
"""

from __future__ import annotations

from fastapi import Response

from backline.accounts.deps import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE
from backline.config import Settings

REFRESH_PATH = "/api/auth"


def set_session_cookies(
    response: Response, *, settings: Settings, access: str, refresh: str, csrf: str
) -> None:
    secure = settings.env != "development"
    common = {"secure": secure, "samesite": "lax"}
    response.set_cookie(
        ACCESS_COOKIE,
        access,
        max_age=settings.access_token_minutes * 60,
        httponly=True,
        path="/",
        **common,  # type: ignore[arg-type]
    )
    response.set_cookie(
        REFRESH_COOKIE,
        refresh,
        max_age=settings.refresh_token_days * 86400,
        httponly=True,
        path=REFRESH_PATH,
        **common,  # type: ignore[arg-type]
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=settings.refresh_token_days * 86400,
        httponly=False,
        path="/",
        **common,  # type: ignore[arg-type]
    )


def clear_session_cookies(response: Response, *, settings: Settings) -> None:
    secure = settings.env != "development"
    response.delete_cookie(ACCESS_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.delete_cookie(
        REFRESH_COOKIE, path=REFRESH_PATH, secure=secure, httponly=True, samesite="lax"
    )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="lax")
