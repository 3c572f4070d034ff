"""Signing in with an address and a password: the one flow the JSON API and the portal share.

The password is checked with no database connection held (hashing takes a while); a wrong one
is counted in a transaction of its own that commits before the refusal is answered, and a right
one opens a session and closes the oldest beyond the account's limit.
"""

from __future__ import annotations

from fastapi import Request

from backline.accounts import auth, signin
from backline.accounts import sessions as open_sessions
from backline.config import Settings
from backline.context import client_info


async def log_in(
    request: Request, *, email: str, password: str
) -> auth.TokenPair | auth.AuthFailure:
    settings: Settings = request.app.state.settings
    engines = request.app.state.engines
    async with signin.reading(engines) as connection:
        attempt = await signin.start(connection, email=email)
    if isinstance(attempt, auth.AuthFailure):
        return attempt
    checked = await signin.check(attempt, password)  # no connection is held meanwhile
    client = client_info(request)
    outcome: auth.TokenPair | auth.AuthFailure
    if checked.right:
        async with signin.writing(engines) as connection:
            outcome = await signin.admit(
                connection, settings=settings, checked=checked, client=client
            )
            if isinstance(outcome, auth.TokenPair) and checked.attempt.account is not None:
                await open_sessions.cap(
                    connection,
                    revocations=request.app.state.revocations,
                    user_id=checked.attempt.account.id,
                    session_id=outcome.session_id,
                    limit=settings.max_sessions,
                    client=client,
                )
    else:  # the count is committed before the failure is answered
        async with request.app.state.sessionmaker() as session, session.begin():
            outcome = await signin.refuse(
                session, settings=settings, checked=checked, client=client
            )
    return outcome
