"""Who is asking: `CurrentUserId`, `CurrentUser`, `CurrentPrincipal`, `RequireRole(...)`, and
CSRF for cookies.

A request is authenticated by a bearer access token (`Authorization: Bearer ...`, for API
clients) or by the HttpOnly access cookie the browser login sets. Either way the token must
verify (see `tokens.verify_access`) and its session must not be revoked (`revocation`). A
token that does not verify is 401 `invalid_token`, once `second_step.stray` has been told of
it: a sign-in challenge token presented here is audited and counted by `backline.factors`.

Cookies are sent by the browser on its own, so a cookie-authenticated request that changes
anything (any method but GET, HEAD, OPTIONS) must also prove it comes from Backline's own
pages: an `X-CSRF-Token` header matching the session's CSRF token (double submit: the page
reads it from the `backline_csrf` cookie), and an `Origin` (or, lacking one, `Referer`) among
the allowed origins. Otherwise 403 `csrf_failed`. Bearer requests need neither: a browser
never adds an Authorization header on its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import lookahead, second_step
from backline.accounts.lookahead import ACCESS_COOKIE as ACCESS_COOKIE  # the cookies' names
from backline.accounts.lookahead import CHALLENGE, presented_token
from backline.accounts.models import Role, User
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import InvalidToken, csrf_valid, verify_access
from backline.apidoc.declare import raises
from backline.config import Settings
from backline.context import bind_user
from backline.deps import SessionDep
from backline.errors import Forbidden, Unauthorized
from backline.routing import JSONRoute

REFRESH_COOKIE = "backline_refresh"
CSRF_COOKIE = "backline_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Identity:
    """Whom a verified access token of a live session names."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    via_cookie: bool


@dataclass(frozen=True)
class Principal:
    user: User
    session_id: uuid.UUID
    via_cookie: bool


def check_csrf(request: Request, session_id: uuid.UUID, presented: str | None = None) -> None:
    """Refuse a cookie-authenticated change not made by Backline's own pages.

    `presented` is the token a portal form carries in a field; scripts send the header instead.
    """
    settings: Settings = request.app.state.settings
    if presented is None:
        presented = request.headers.get(CSRF_HEADER, "")
    if not presented or not csrf_valid(settings.signing_key, session_id, presented):
        raise Forbidden("The CSRF token is missing or wrong.", code="csrf_failed")
    check_origin(request)


def check_origin(request: Request) -> None:
    """Refuse a request whose `Origin` (or, lacking one, `Referer`) is not an allowed origin."""
    settings: Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if origin is None:
        referer = urlsplit(request.headers.get("referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
    if origin is None or origin.rstrip("/") not in settings.cors_origins:
        raise Forbidden("This request did not come from an allowed origin.", code="csrf_failed")


async def identify(request: Request) -> Identity:
    """Check the access token and its session; the check every signed-in route makes, once
    per request (`SignedInRoute` makes it before the body is read, the dependency reuses it).

    A cookie-authenticated change must also pass `check_csrf` with the header.
    """
    known = getattr(request.state, "identity", None)
    if isinstance(known, Identity):
        return known
    identity = await verify_session(request)
    if identity.via_cookie and request.method not in SAFE_METHODS:
        check_csrf(request, identity.session_id)
    request.state.identity = identity
    return identity


class SignedInRoute(JSONRoute):
    """The route class of signed-in routers: the sign-in is checked before the body is read,
    so a request without credentials is 401 whatever its body."""

    signed_in = True

    @raises(
        (401, "unauthenticated"),
        (401, "invalid_token"),
        (401, "session_revoked"),
        (503, "revocation_unavailable"),
        # A challenge token presented instead is counted against `mfa_verify` (`second_step`).
        (429, "rate_limited"),
        (503, "rate_limit_unavailable"),
    )
    @raises((403, "csrf_failed"), methods=("POST", "PUT", "PATCH", "DELETE"))
    async def admit(self, request: Request) -> None:
        await identify(request)


async def verify_session(request: Request) -> Identity:
    """The token and session check without CSRF: for portal forms, which check their field.

    It reads no database row: a deleted account's sessions were revoked when it went, so a
    token that passes names an account that exists. Routes that need the account itself (its
    role, its name) load it with `CurrentUser`.
    """
    presented = presented_token(request)
    if presented is None:
        raise Unauthorized("Sign in first.", code="unauthenticated", headers=CHALLENGE)
    token, via_cookie = presented
    settings: Settings = request.app.state.settings
    try:
        claims = verify_access(settings.signing_key, token)
    except InvalidToken:
        await second_step.stray(request, token)  # a challenge token, say: audited and counted
        raise Unauthorized(
            "The access token is not valid.", code="invalid_token", headers=CHALLENGE
        ) from None
    revocations: Revocations = request.app.state.revocations
    revoked = await lookahead.taken(request.scope, claims.session_id)
    if revoked is None:
        revoked = await revocations.is_revoked(claims.session_id)
    if revoked:
        raise Unauthorized(
            "This session has ended; sign in again.", code="session_revoked", headers=CHALLENGE
        )
    request.state.user_id = claims.user_id
    bind_user(claims.user_id)
    return Identity(user_id=claims.user_id, session_id=claims.session_id, via_cookie=via_cookie)


async def _load(session: AsyncSession, identity: Identity) -> Principal:
    user = await session.get(User, identity.user_id)
    if user is None:
        raise Unauthorized("This account no longer exists.", code="invalid_token")
    return Principal(user=user, session_id=identity.session_id, via_cookie=identity.via_cookie)


async def authenticate(
    identity: Annotated[Identity, Depends(identify)], session: SessionDep
) -> Principal:
    return await _load(session, identity)


async def _current_user(principal: Annotated[Principal, Depends(authenticate)]) -> User:
    return principal.user


async def _current_user_id(identity: Annotated[Identity, Depends(identify)]) -> uuid.UUID:
    return identity.user_id


async def _detached_user(
    request: Request, identity: Annotated[Identity, Depends(identify)]
) -> User:
    async with request.app.state.sessionmaker() as session, session.begin():
        principal = await _load(session, identity)
    return principal.user


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
CurrentUser = Annotated[User, Depends(_current_user)]
# For routes that need only who is asking, not the account row: no database round trip.
CurrentUserId = Annotated[uuid.UUID, Depends(_current_user_id)]
# For routes that run for minutes: the user is read in a transaction of its own, which ends
# before the route starts, so no connection is held while a body streams in.
DetachedUser = Annotated[User, Depends(_detached_user)]

# Staff rights include the admin's; the artist role is a capability of its own.
_GRANTS: dict[Role, frozenset[str]] = {
    Role.USER: frozenset({"user", "artist", "staff", "admin"}),
    Role.ARTIST: frozenset({"artist"}),
    Role.STAFF: frozenset({"staff", "admin"}),
    Role.ADMIN: frozenset({"admin"}),
}


def RequireRole(role: str) -> Any:  # noqa: N802 - reads as a declaration on the route
    """A dependency admitting users whose role grants `role`; 403 `forbidden_role` otherwise."""
    needed = Role(role)

    @raises((403, "forbidden_role"))
    async def require(user: CurrentUser) -> User:
        if user.role not in _GRANTS[needed]:
            raise Forbidden(f"This needs the {needed.value} role.", code="forbidden_role")
        return user

    require.__name__ = f"require_{needed.value}"
    return Depends(require)
