"""Keeping a browser signed in on server-rendered pages: `browser_identity(request)`.

An access token lives BACKLINE_ACCESS_TOKEN_MINUTES; the session behind it lives as long as its
refresh token is used within the idle limit. A script renews its access token by calling
`/api/auth/refresh`; a page cannot (the portal works with JavaScript off), so the page request
renews it: when the access cookie is missing (the browser drops it when it lapses), expired or
otherwise unusable, and the refresh cookie is present (see `accounts.cookies` for why its path
is `/`), the refresh token is rotated by the very code `/api/auth/refresh` runs, and the new
cookies go out with the page's response, whatever response that turns out to be (see
`middleware.cookies`). A person using the portal thus stays signed in for as long as the
session may last, and a form posted long after the access token lapsed is handled, not lost.

How it stays safe:

* The session is the same: rotation keeps the session ID, so the CSRF token the form carries
  (HMAC of the session ID) still matches, and the form's token and origin are still checked by
  the page (`web.viewer.checked_form`). For a post, the origin is checked before anything is
  rotated: a post from another site is refused with 403 `csrf_failed` and uses nothing up.
* Concurrency is the API's: the rotation holds `auth.rotation_lock` and the token's row lock,
  so two tabs renewing at once with the same token both get the same successor within the
  10-second grace window, and reuse detection still ends the session when a used token comes
  back later.
* The grace window bounds it as it bounds the API: the successor reaches the browser with the
  page's response, so another request of the same browser that sets out with the old token
  more than 10 seconds after the rotation and before that response arrives is taken as a reuse.
  Pages answer in well under that, and no portal form posts a file (uploads go from the
  page's script to the API or to storage), so no form keeps its response waiting that long.
* A link followed from another site (a top-level GET, which SameSite=Lax lets carry the
  cookie) may renew too: the browser itself gets the answer, so nothing leaks and nothing is
  used up that the browser does not replace.
* Revocation is final: a session ended (signing out, signing out everywhere, a password reset,
  the session cap) is refused by the rotation, which reads the session's row, so the refresh
  cookie never revives it; its cookies are cleared instead. An access cookie whose session was
  revoked is not even traded in: the cookies are cleared at once.
"""

from __future__ import annotations

from fastapi import Request, Response

from backline.accounts import auth
from backline.accounts.cookies import clear_session_cookies, set_session_cookies
from backline.accounts.deps import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    SAFE_METHODS,
    Identity,
    check_origin,
    verify_session,
)
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import csrf_token, looks_opaque, verify_access
from backline.config import Settings
from backline.context import bind_user, client_info
from backline.errors import Unauthorized
from backline.middleware.cookies import defer_cookies

_FOUND = "browser_identity"


async def browser_identity(request: Request) -> Identity | None:
    """Who the browser's cookie session names, renewing it if its access cookie lapsed.

    None for a browser not signed in, or whose session has ended. Asked twice in one request,
    it answers the same without renewing again. A post from an origin that is not allowed,
    with a session to renew, raises 403 `csrf_failed`.
    """
    found: Identity | None
    if hasattr(request.state, _FOUND):
        found = getattr(request.state, _FOUND)
        return found
    found = await _identify(request)
    setattr(request.state, _FOUND, found)
    return found


async def _identify(request: Request) -> Identity | None:
    settings: Settings = request.app.state.settings
    if request.cookies.get(ACCESS_COOKIE):
        try:
            return await verify_session(request)
        except Unauthorized as exc:
            if exc.code == "session_revoked":
                _forget(request, settings)
                return None
            # Expired or otherwise unusable: the refresh cookie may renew it.
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        return None
    if not looks_opaque(token):
        _forget(request, settings)
        return None
    if request.method not in SAFE_METHODS:
        check_origin(request)
    return await _renew(request, settings, token)


async def _renew(request: Request, settings: Settings, token: str) -> Identity | None:
    cookies = Response()
    if not defer_cookies(request.scope, cookies):
        # No way to hand the successor to the browser: rotating would leave it holding a
        # used token, which its next request would present as a reuse.
        return None
    revocations: Revocations = request.app.state.revocations
    sessionmaker = request.app.state.sessionmaker
    async with auth.rotation_lock(token), sessionmaker() as session, session.begin():
        outcome = await auth.refresh(
            session,
            settings=settings,
            revocations=revocations,
            token=token,
            client=client_info(request),
        )
    if isinstance(outcome, auth.AuthFailure):
        _forget(request, settings)
        return None
    set_session_cookies(
        cookies,
        settings=settings,
        access=outcome.access_token,
        refresh=outcome.refresh_token,
        csrf=csrf_token(settings.signing_key, outcome.session_id),
    )
    defer_cookies(request.scope, cookies)
    claims = verify_access(settings.signing_key, outcome.access_token)
    request.state.user_id = claims.user_id
    bind_user(claims.user_id)
    return Identity(user_id=claims.user_id, session_id=claims.session_id, via_cookie=True)


def _forget(request: Request, settings: Settings) -> None:
    """Clear the cookies of a session that has ended, so the browser stops presenting them."""
    cookies = Response()
    clear_session_cookies(cookies, settings=settings)
    defer_cookies(request.scope, cookies)
