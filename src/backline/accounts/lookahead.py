"""Asking whether a request's session was revoked while its global rate limit is checked.

A signed-in request asks Redis two things before its route runs: the global limit
(`middleware.ratelimit`) and whether its session was revoked (`deps.verify_session`). Neither
needs the other's answer to be asked. `start(scope, state)`, called by the rate-limit
middleware just before it checks the limit, reads the access token presented and, when it
verifies, asks about its session at once: both questions are queued in the same turn of the
event loop, and the shared pipeliner sends them in one write.

`verify_session` then takes the answer (`taken`) instead of asking again. Nothing is started
without a token that verifies, or where revocations are not kept in Redis; the route then asks
as before. Whatever the answer, it is only used by the check that would have asked it: a
request the limit refuses, or a public route, never reads it, and its task ends on its own.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from starlette.datastructures import State
from starlette.requests import HTTPConnection
from starlette.types import Scope

from backline.accounts.revocation import Revocations
from backline.accounts.tokens import InvalidToken, verify_access
from backline.errors import ProblemError, Unauthorized

ACCESS_COOKIE = "backline_access"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="backline"'}
_KEY = "revocation_lookahead"  # in the request's state: (session id, the check under way)


def presented_token(connection: HTTPConnection) -> tuple[str, bool] | None:
    """The access token presented, and whether by cookie; None when there is none.

    An `Authorization` header other than a bearer token is 401 `invalid_token`."""
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "Use `Authorization: Bearer <access token>`.",
                code="invalid_token",
                headers=CHALLENGE,
            )
        return value.strip(), False
    cookie = connection.cookies.get(ACCESS_COOKIE)
    if cookie:
        return cookie, True
    return None


def start(scope: Scope, state: State) -> None:
    """Ask whether the session of the token presented was revoked, if it can be asked now."""
    revocations: Revocations = state.revocations
    if revocations.pipeliner is None:  # not in Redis: a cached database read, no round trip
        return
    try:
        presented = presented_token(HTTPConnection(scope))
        if presented is None:
            return
        claims = verify_access(state.settings.signing_key, presented[0])
    except (ProblemError, InvalidToken):
        return  # the route's own check refuses it, in its own words
    check = asyncio.ensure_future(revocations.is_revoked(claims.session_id))
    check.add_done_callback(_retrieved)
    scope.setdefault("state", {})[_KEY] = (claims.session_id, check)


async def taken(scope: Scope, session_id: uuid.UUID) -> bool | None:
    """The answer started for this session, once; None if none was started."""
    started: Any = scope.get("state", {}).pop(_KEY, None)
    if started is None or started[0] != session_id:
        return None
    revoked: bool = await started[1]
    return revoked


def _retrieved(check: asyncio.Future[bool]) -> None:
    if not check.cancelled():
        check.exception()  # read by `taken`, or by no one: never reported as lost
