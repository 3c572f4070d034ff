"""The browser's session cookies: HttpOnly tokens, a readable CSRF token.

* `backline_access`: the access token, HttpOnly, for every path, as long as the token lives.
* `backline_refresh`: the refresh token, HttpOnly, for every path, as long as the session may
  last. Portal pages are server-rendered and must work with JavaScript off, so it is the page
  request itself that renews a lapsed access cookie (see `accounts.renewal`); for that the
  pages must see the refresh cookie, as they would a classic session cookie. (Keeping it under
  `/api/auth` would mean bouncing every page through a redirect there and back, re-sending
  each posted form's body twice, or a script, which cannot run with JavaScript off.) It stays
  HttpOnly (no script reads it), SameSite=Lax (no cross-site form post or fetch carries it) and
  Secure outside development. Browsers signed in before the cookie was widened hold it under
  the path `/api/auth` (`LEGACY_REFRESH_PATH`): setting or clearing the cookie also expires that
  copy, so a browser never holds two.
* `backline_csrf`: the session's CSRF token, readable by the page's script, which echoes it in
  `X-CSRF-Token`.

All are SameSite=Lax, and Secure everywhere but development (where the server is plain http).
"""

from __future__ import annotations

from fastapi import Response

from backline.accounts.deps import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE
from backline.config import Settings

REFRESH_PATH = "/"
LEGACY_REFRESH_PATH = "/api/auth"


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
    response.delete_cookie(
        REFRESH_COOKIE, path=LEGACY_REFRESH_PATH, secure=secure, httponly=True, samesite="lax"
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
    for path in (LEGACY_REFRESH_PATH, REFRESH_PATH):
        response.delete_cookie(
            REFRESH_COOKIE, path=path, secure=secure, httponly=True, samesite="lax"
        )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="lax")
