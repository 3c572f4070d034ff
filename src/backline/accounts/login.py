"""Signing in with an address and a password: the one flow the JSON API and the portal share.

The password is checked with no database connection held (hashing takes a while); a wrong one
is counted in a transaction of its own that commits before the refusal is answered, and a right
one opens a session and closes the oldest beyond the account's limit.

When a second step is registered (`second_step`) and the account must prove a second factor,
a right password opens no session: `log_in` answers the gate's `Challenge` instead, and the
second step opens the session with `open_after_second_step`, on its own transaction.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from backline.accounts import auth, second_step, signin, throttle
from backline.config import Settings
from backline.context import ClientInfo, client_info


async def log_in(
    request: Request, *, email: str, password: str
) -> auth.TokenPair | auth.AuthFailure | second_step.Challenge:
    settings: Settings = request.app.state.settings
    engines = request.app.state.engines
    async with signin.reading(engines) as connection:
        attempt = await signin.start(connection, email=email)
    if isinstance(attempt, auth.AuthFailure):
        return attempt
    checked = await signin.check(attempt, password)  # no connection is held meanwhile
    client = client_info(request)
    account = checked.attempt.account
    if checked.right and account is not None and account.verified and second_step.registered():
        async with engines.autocommit.connect() as connection:
            if (paused_for := await throttle.locked_for(connection, key=attempt.key)) is not None:
                return auth.locked(paused_for)  # paused meanwhile, as `admit` would answer
            challenge = await second_step.ask(
                connection, settings=settings, user_id=account.id, client=client
            )
            if challenge is not None:
                await signin.rehash(connection, checked=checked)
                return challenge
    outcome: auth.TokenPair | auth.AuthFailure
    if checked.right:
        async with signin.writing(engines) as connection:
            outcome = await signin.admit(
                connection,
                settings=settings,
                revocations=request.app.state.revocations,
                checked=checked,
                client=client,
            )
    else:  # the count is committed before the failure is answered
        async with request.app.state.sessionmaker() as session, session.begin():
            outcome = await signin.refuse(
                session, settings=settings, checked=checked, client=client
            )
    return outcome


async def open_after_second_step(
    request: Request,
    connection: AsyncConnection,
    *,
    user_id: uuid.UUID,
    factor: str,
    client: ClientInfo,
    method: str = "password",
) -> auth.TokenPair | auth.AuthFailure:
    """Open the session a completed second step has earned, as a right password would have.
    `method` is how the first step was made (a password, or an external provider's sign-in).

    `connection` is the second step's own, in its transaction (which marks the challenge
    used): the session, refresh token, audit event (naming `factor`) and the cleared failure
    count commit with it. The address may have been paused since the password step: then no
    session opens and the pause is answered.
    """
    settings: Settings = request.app.state.settings
    attempt = await signin.account_of(connection, user_id=user_id)
    if attempt is None or attempt.account is None:
        return auth.AuthFailure(401, "invalid_challenge", "Sign in again.")
    checked = signin.Checked(attempt, right=True)
    return await signin.admit(
        connection,
        settings=settings,
        revocations=request.app.state.revocations,
        checked=checked,
        client=client,
        factor=factor,
        method=method,
    )
