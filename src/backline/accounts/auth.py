"""Staying signed in: lockout, refresh rotation, sessions, logout (`signin` opens sessions).

Failures that must still be written down (a wrong password counts toward a lock; a reused
refresh token ends its session) are returned as an `AuthFailure`, not raised: the route
commits the transaction and then answers with the problem, so the record survives the error.

Login answers the same 401 `invalid_credentials`, in the same time, for an unknown address and
for a wrong password: an unknown address is checked against a dummy hash. Only after a correct
password does it say that the address is unverified. After `lockout_threshold` wrong passwords
within 15 minutes the address is paused for 1, 2, 4 ... up to 60 minutes (never for good; see
`throttle`, which treats unknown addresses alike), an account's owner is emailed, and every
attempt meanwhile answers 429 with Retry-After without looking at the password. A correct
password clears the count, unless other attempts paused the address while it was checked (the
pause stands); a password reset clears count and pause.

Refresh tokens rotate on every use. A token used a second time after the grace window (10 s,
for two tabs refreshing at once, which both get the same successor) is taken as stolen: its
whole session is revoked.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import throttle
from backline.accounts.models import AuthSession, RefreshToken, User
from backline.accounts.names import addressee
from backline.accounts.passwords import hasher, verify_password
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import digest, issue_access, now, refresh_successor
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.email import service as outbox
from backline.metrics import LOCKOUTS, LOGIN_FAILURES, SESSIONS_REVOKED

REFRESH_GRACE = timedelta(seconds=10)
DUMMY_HASH = hasher.hash("backline dummy password for timing equality")


class Person(Protocol):
    """Whom a lockout notice goes to: a `User`, or sign-in's lighter `Account`."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def is_verified(self) -> bool: ...


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


@dataclass(frozen=True)
class AuthFailure:
    status: int
    code: str
    detail: str
    retry_after: int | None = None


async def _issue(
    session: AsyncSession,
    *,
    settings: Settings,
    auth_session: AuthSession,
    refresh: str,
) -> TokenPair:
    """Store the refresh token (and flush whatever else the caller added) and sign in."""
    session.add(RefreshToken(session_id=auth_session.id, token_hash=digest(refresh)))
    await session.flush()
    access = issue_access(
        settings.signing_key,
        user_id=auth_session.user_id,
        session_id=auth_session.id,
        minutes=settings.access_token_minutes,
    )
    return TokenPair(access, refresh, settings.access_token_minutes * 60, auth_session.id)


def locked(retry_after: int) -> AuthFailure:
    return AuthFailure(
        429, "account_locked", "Too many failed sign-ins; try again later.", retry_after
    )


async def count_failure(
    session: AsyncSession,
    *,
    settings: Settings,
    key: str,
    user: Person | None,
    client: ClientInfo,
    reason: str | None = None,
) -> AuthFailure | None:
    """Count a wrong password for the address; a lock that follows is audited and mailed.

    A second step's wrong code counts the same way, its `reason` (the refusal's code) audited.

    When another attempt paused the address while this one was being checked, nothing is
    counted and the pause is returned, to be answered instead: the same 429 as for a right
    password in that moment (see `signin`), so that the answer tells nothing of the password.
    """
    outcome = await throttle.failed(session, key=key, threshold=settings.lockout_threshold)
    if outcome.paused_for is not None:
        return locked(outcome.paused_for)
    LOGIN_FAILURES.inc()
    user_id = user.id if user is not None else None
    await audit.record(
        session,
        event="login_failed",
        user_id=user_id,
        client=client,
        reason=reason or ("wrong_password" if user else "unknown_email"),
    )
    if outcome.locked_until is None:
        return None
    LOCKOUTS.inc()
    await audit.record(
        session,
        event="lockout",
        user_id=user_id,
        client=client,
        until=outcome.locked_until.isoformat(),
        level=outcome.level,
    )
    if user is not None:
        await outbox.enqueue(
            session,
            settings=settings,
            template="account_locked",
            to_address=user.email,
            to_name=addressee(user),
            context={
                "failures": settings.lockout_threshold,
                "locked_until": f"{outcome.locked_until:%Y-%m-%d %H:%M} UTC",
            },
        )
    return None


async def check_password_again(
    session: AsyncSession, *, settings: Settings, user: User, password: str, client: ClientInfo
) -> AuthFailure | None:
    """Re-check a signed-in user's password (before a change or a deletion).

    Wrong answers count toward the same pause as sign-in, so a stolen access token is no
    licence to guess the password: 403 `invalid_credentials`, then 429 `account_locked`. Like
    `login`, a failure is returned for the route to answer after committing the count.
    """
    key = throttle.key_for(user.email)
    if (retry := await throttle.locked_for(session, key=key)) is not None:
        return locked(retry)
    if not await verify_password(user.password_hash, password):
        paused = await count_failure(session, settings=settings, key=key, user=user, client=client)
        return paused or AuthFailure(403, "invalid_credentials", "The password is wrong.")
    await throttle.clear(session, key=key, unless_paused=True)
    if (retry := await throttle.locked_for(session, key=key)) is not None:
        return locked(retry)  # paused by other attempts while this one hashed
    return None


_rotations: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


@asynccontextmanager
async def rotation_lock(token: str) -> AsyncIterator[None]:
    """Serialize this process's refreshes of one token, transaction included.

    Across processes PostgreSQL's row lock (`FOR UPDATE`) does the same; SQLite, having no
    row locks, relies on this for the one process that development runs.
    """
    key = digest(token)
    lock = _rotations.get(key)
    if lock is None:
        lock = _rotations[key] = asyncio.Lock()
    async with lock:
        yield


async def refresh(
    session: AsyncSession,
    *,
    settings: Settings,
    revocations: Revocations,
    token: str,
    client: ClientInfo,
) -> TokenPair | AuthFailure:
    invalid = AuthFailure(401, "invalid_refresh_token", "Sign in again.")
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(token)).with_for_update()
    )
    if row is None:
        return invalid
    auth_session = await session.get(AuthSession, row.session_id, with_for_update=True)
    moment = now()
    if (
        auth_session is None
        or not auth_session.active(moment)
        or auth_session.last_used_at + timedelta(days=settings.session_idle_days) < moment
    ):
        return invalid
    successor = refresh_successor(settings.signing_key, token)
    if row.used_at is None:
        row.used_at = moment
        auth_session.last_used_at = moment
        return await _issue(
            session, settings=settings, auth_session=auth_session, refresh=successor
        )
    if moment - row.used_at <= REFRESH_GRACE:  # a concurrent refresh: the same successor
        access = issue_access(
            settings.signing_key,
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            minutes=settings.access_token_minutes,
        )
        return TokenPair(access, successor, settings.access_token_minutes * 60, auth_session.id)
    await revoke_sessions(
        session, revocations=revocations, sessions=[auth_session], reason="refresh_reuse"
    )
    await audit.record(
        session,
        event="refresh_reuse",
        user_id=auth_session.user_id,
        client=client,
        session_id=str(auth_session.id),
    )
    return AuthFailure(
        401, "refresh_token_reused", "This sign-in was ended for safety; sign in again."
    )


async def session_of_refresh(session: AsyncSession, *, token: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(RefreshToken.session_id).where(RefreshToken.token_hash == digest(token))
    )
    return found


async def revoke_sessions(
    session: AsyncSession,
    *,
    revocations: Revocations,
    sessions: Sequence[AuthSession],
    reason: str,
) -> None:
    moment = now()
    ids = [s.id for s in sessions if s.revoked_at is None]
    if not ids:
        return
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id.in_(ids))
        .values(revoked_at=moment, revoked_reason=reason)
        .execution_options(synchronize_session="fetch")
    )
    await revocations.revoked(ids)
    SESSIONS_REVOKED.labels(reason).inc(len(ids))


async def list_sessions(session: AsyncSession, *, user_id: uuid.UUID) -> Sequence[AuthSession]:
    moment = now()
    rows = await session.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > moment,
        )
        .order_by(AuthSession.last_used_at.desc())
    )
    return rows.all()


async def end_sessions(
    session: AsyncSession,
    *,
    revocations: Revocations,
    user_id: uuid.UUID,
    reason: str,
    keep: uuid.UUID | None = None,
    only: uuid.UUID | None = None,
) -> int:
    """Revoke the user's active sessions (all, all but `keep`, or `only` one); how many."""
    targets = [
        s
        for s in await list_sessions(session, user_id=user_id)
        if s.id != keep and (only is None or s.id == only)
    ]
    await revoke_sessions(session, revocations=revocations, sessions=targets, reason=reason)
    return len(targets)
