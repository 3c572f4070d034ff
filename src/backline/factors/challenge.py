"""The sign-in challenge: what a right password earns when a second factor is needed.

The challenge token is a JWT signed with BACKLINE_SECRET_KEY, like an access token, but of
another kind entirely: header `typ: mfa+jwt`, audience `backline-mfa`, claim
`token_use: mfa_challenge`. An access token is refused here, and a challenge token is refused
as an access token (`tokens.verify_access` wants `typ: at+jwt`, its own audience and use).
It lives 5 minutes and names its row in `mfa_challenges` (`jti`), which holds what a signature
cannot: whether it was used, and how many codes were tried. It also says how the first step
was made (`via`: `password`, or `oidc` after an external provider), which the session's
`login_ok` event records as its `method`.

`redeem` is the one way to complete a challenge, whatever the method: a method passes its own
`check`, called with the account once the challenge is claimed. TOTP and recovery codes use it
(`factors.service`); a passkey's assertion completes a challenge the same way:

    outcome = await challenge.redeem(request, token=token, purpose=Purpose.SIGN_IN, check=check)

where `check(session, user)` verifies the assertion and returns a `Proof` (the method's name,
and anything the route should hand back) or a `Wrong` (a refusal's code and text). `redeem`
does the rest: every try counts against the challenge (the sixth is refused whatever it
holds), a wrong one counts toward the address's lockout as a wrong password does and is
audited, and a right one marks the challenge used and opens the session exactly as the
password step would have, all in one transaction.

A challenge token presented in place of an access token is refused there (401 `invalid_token`);
`presented_as_access`, which `factors.gate` registers with `accounts.second_step`, audits that
refusal and counts it against the `mfa_verify` limit.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from fastapi import Request
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backline.accounts import auth, throttle
from backline.accounts.login import open_after_second_step
from backline.accounts.models import User
from backline.accounts.tokens import ALGORITHM, ISSUER, LEEWAY_SECONDS, now
from backline.audit import service as audit
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.context import ClientInfo, client_info
from backline.factors.models import MfaChallenge
from backline.ratelimit.deps import charge

TYP = "mfa+jwt"
AUDIENCE = "backline-mfa"
USE = "mfa_challenge"
LIFETIME = timedelta(minutes=5)
MAX_TRIES = 5


class Purpose(enum.StrEnum):
    SIGN_IN = "sign_in"  # prove a factor the account holds
    ENROL = "enrol"  # the account's role needs a factor it does not hold yet: enrol one


@dataclass(frozen=True)
class Claims:
    challenge_id: uuid.UUID
    user_id: uuid.UUID
    purpose: str
    expires_at: datetime
    via: str = "password"  # how the first step was made


@dataclass(frozen=True)
class Proof:
    """A method's check passed: which method, and what the route hands back."""

    factor: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wrong:
    """A method's check failed: a stable code, a sentence for the person, and the status to
    answer (401 for a wrong code; a passkey's malformed or misdirected assertion is 400)."""

    code: str
    detail: str
    status: int = 401


Check = Callable[[AsyncSession, User], Awaitable[Proof | Wrong]]


@dataclass(frozen=True)
class Redeemed:
    pair: auth.TokenPair
    proof: Proof


class Refused(Exception):
    """A challenge token that completes nothing: its code, its text, and (when its signature
    held) whose it was."""

    def __init__(self, code: str, detail: str, user_id: uuid.UUID | None = None) -> None:
        super().__init__(code)
        self.code, self.detail, self.user_id = code, detail, user_id

    def failure(self) -> auth.AuthFailure:
        return auth.AuthFailure(401, self.code, self.detail)


_INVALID = "This sign-in step is not valid; sign in again."
_EXPIRED = "This sign-in step took too long; sign in again."
_USED = "This sign-in step is over; sign in again."
_EXHAUSTED = "Too many wrong codes for this sign-in; sign in again."


def sign(
    key: bytes,
    *,
    challenge_id: uuid.UUID,
    user_id: uuid.UUID,
    purpose: Purpose,
    via: str = "password",
) -> str:
    issued = now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "jti": str(challenge_id),
        "pur": purpose.value,
        "via": via,
        "iat": int(issued.timestamp()),
        "exp": int((issued + LIFETIME).timestamp()),
        "token_use": USE,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": TYP})


def read(key: bytes, token: str, *, purpose: Purpose) -> Claims:
    """The claims of a genuine challenge token for `purpose`; `Refused` for anything else.

    Expiry is checked against `tokens.now()` (the clock seam), not inside PyJWT."""
    found = _signed(key, token)
    if found.purpose != purpose.value:
        raise Refused("invalid_challenge", _INVALID, found.user_id)
    if now().timestamp() >= found.expires_at.timestamp() + LEEWAY_SECONDS:
        raise Refused("challenge_expired", _EXPIRED, found.user_id)
    return found


def _signed(key: bytes, token: str) -> Claims:
    """The claims of a challenge token signed here, whatever its purpose or age."""
    try:
        if jwt.get_unverified_header(token).get("typ") != TYP:
            raise Refused("invalid_challenge", _INVALID)
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["sub", "jti", "iat", "exp"], "verify_exp": False},
        )
        if claims.get("token_use") != USE:
            raise Refused("invalid_challenge", _INVALID)
        found = Claims(
            challenge_id=uuid.UUID(claims["jti"]),
            user_id=uuid.UUID(claims["sub"]),
            purpose=str(claims.get("pur")),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), now().tzinfo),
            via=str(claims.get("via", "password")),
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError):
        raise Refused("invalid_challenge", _INVALID) from None
    return found


async def presented_as_access(request: Request, token: str) -> None:
    """A token refused as an access token (`accounts.second_step.stray`): when it is a challenge
    token signed here (of any purpose, expired or not), the misuse is audited
    (`mfa_challenge_misused`, never the token) and counted against `mfa_verify`, the second
    step's own limit, whose spent budget answers 429 instead of the 401 (and writes nothing).
    Anything else, such as a forged or garbled token, is left to the 401 alone."""
    settings: Settings = request.app.state.settings
    try:
        claims = _signed(settings.signing_key, token)
    except Refused:
        return
    # Counted first: once the budget is spent the answer is 429 and nothing more is written,
    # so one token cannot grow the audit log without bound.
    await charge(request, "mfa_verify")
    async with request.app.state.sessionmaker() as session, session.begin():
        await audit.record(
            session,
            event="mfa_challenge_misused",
            user_id=claims.user_id,
            client=client_info(request),
            challenge_id=str(claims.challenge_id),
        )


async def issue(
    connection: AsyncConnection,
    *,
    settings: Settings,
    user_id: uuid.UUID,
    purpose: Purpose,
    client: ClientInfo,
    via: str = "password",
) -> tuple[str, int]:
    """A new challenge for the account (its row and audit event), as (token, seconds left);
    `via` says how the first step was made.

    The account's challenges that are over (used or expired) are cleared first, so the table
    holds at most the few started within the last minutes per account."""
    moment = now()
    await connection.execute(
        delete(MfaChallenge).where(
            MfaChallenge.user_id == user_id,
            or_(MfaChallenge.consumed_at.is_not(None), MfaChallenge.expires_at <= moment),
        )
    )
    challenge_id = uuid.uuid4()
    await connection.execute(
        insert(MfaChallenge).values(
            id=challenge_id,
            user_id=user_id,
            purpose=purpose.value,
            created_at=moment,
            expires_at=moment + LIFETIME,
            attempts=0,
        )
    )
    event = audit.values(
        event="mfa_challenge_issued",
        user_id=user_id,
        client=client,
        purpose=purpose.value,
        challenge_id=str(challenge_id),
        via=via,
    )
    await connection.execute(insert(AuditEvent).values(**event))
    token = sign(
        settings.signing_key, challenge_id=challenge_id, user_id=user_id, purpose=purpose, via=via
    )
    return token, int(LIFETIME.total_seconds())


async def claim(session: AsyncSession, claims: Claims) -> int:
    """Count one try against a live challenge; the tries so far. `Refused` when the challenge
    is used, expired, out of tries, or not the token's.

    One conditional UPDATE: of two tries at once, each is counted, and on PostgreSQL the row
    stays locked until the first commits (the second then finds it used)."""
    moment = now()
    tries = await session.scalar(
        update(MfaChallenge)
        .where(
            MfaChallenge.id == claims.challenge_id,
            MfaChallenge.user_id == claims.user_id,
            MfaChallenge.purpose == claims.purpose,
            MfaChallenge.consumed_at.is_(None),
            MfaChallenge.expires_at > moment,
            MfaChallenge.attempts < MAX_TRIES,
        )
        .values(attempts=MfaChallenge.attempts + 1)
        .returning(MfaChallenge.attempts)
    )
    if tries is not None:
        return int(tries)
    row = await session.scalar(
        select(MfaChallenge).where(
            MfaChallenge.id == claims.challenge_id, MfaChallenge.user_id == claims.user_id
        )
    )
    if row is None:
        raise Refused("invalid_challenge", _INVALID, claims.user_id)
    if row.consumed_at is not None:
        raise Refused("challenge_used", _USED, claims.user_id)
    if row.attempts >= MAX_TRIES:
        raise Refused("challenge_exhausted", _EXHAUSTED, claims.user_id)
    raise Refused("challenge_expired", _EXPIRED, claims.user_id)


async def alive(session: AsyncSession, claims: Claims) -> None:
    """`Refused` unless the challenge can still be completed (read only: nothing counted)."""
    row = await session.get(MfaChallenge, claims.challenge_id)
    if row is None or row.user_id != claims.user_id or row.purpose != claims.purpose:
        raise Refused("invalid_challenge", _INVALID, claims.user_id)
    if row.consumed_at is not None:
        raise Refused("challenge_used", _USED, claims.user_id)
    if row.attempts >= MAX_TRIES:
        raise Refused("challenge_exhausted", _EXHAUSTED, claims.user_id)
    if row.expires_at <= now():
        raise Refused("challenge_expired", _EXPIRED, claims.user_id)


async def refused(
    request: Request, refusal: Refused, *, session: AsyncSession | None = None
) -> auth.AuthFailure:
    """Record a refused token and answer it: in `session` when given (its caller commits),
    else in a transaction of its own."""
    if session is not None:
        await _record_refusal(session, request, refusal)
        return refusal.failure()
    async with request.app.state.sessionmaker() as own, own.begin():
        await _record_refusal(own, request, refusal)
    return refusal.failure()


async def _record_refusal(session: AsyncSession, request: Request, refusal: Refused) -> None:
    await audit.record(
        session,
        event="mfa_challenge_refused",
        user_id=refusal.user_id,
        client=client_info(request),
        reason=refusal.code,
    )


async def redeem(
    request: Request, *, token: str, purpose: Purpose, check: Check
) -> Redeemed | auth.AuthFailure:
    """Complete a challenge with a method's `check`: a session, or the refusal to answer.

    Whatever happens is committed before it is answered: the try counted, the wrong code
    counted toward the lockout and audited, or the session opened. A right code whose session
    cannot open (the address was paused meanwhile) changes nothing but the count of tries.
    """
    settings: Settings = request.app.state.settings
    client = client_info(request)
    try:
        claims = read(settings.signing_key, token, purpose=purpose)
    except Refused as refusal:
        return await refused(request, refusal)
    async with request.app.state.sessionmaker() as session:
        try:
            tries = await claim(session, claims)
        except Refused as refusal:
            await session.rollback()
            return await refused(request, refusal)
        await session.commit()  # the try counts, whatever follows
        user = await session.get(User, claims.user_id)
        if user is None:
            return Refused("invalid_challenge", _INVALID).failure()
        changed = user.password_changed_at
        if changed is not None and changed > claims.expires_at - LIFETIME:
            # The password changed (a reset, say) after the step that earned this challenge.
            await session.rollback()
            return await refused(request, Refused("invalid_challenge", _INVALID, claims.user_id))
        key = throttle.key_for(user.email)
        if (paused_for := await throttle.locked_for(session, key=key)) is not None:
            await session.rollback()
            return auth.locked(paused_for)
        verdict = await check(session, user)
        if isinstance(verdict, Wrong):
            failure = await _wrong(session, settings, user, key, verdict, tries, client)
            await session.commit()
            return failure
        used = await session.execute(
            update(MfaChallenge)
            .where(MfaChallenge.id == claims.challenge_id, MfaChallenge.consumed_at.is_(None))
            .values(consumed_at=now())
        )
        if used.rowcount != 1:  # completed meanwhile by another method's try
            await session.rollback()
            return await refused(request, Refused("challenge_used", _USED, claims.user_id))
        outcome = await open_after_second_step(
            request,
            await session.connection(),
            user_id=user.id,
            factor=verdict.factor,
            client=client,
            method=claims.via,
        )
        if isinstance(outcome, auth.AuthFailure):
            await session.rollback()  # the code stays unused; the challenge keeps its tries
            return outcome
        await session.commit()
    return Redeemed(outcome, verdict)


async def _wrong(
    session: AsyncSession,
    settings: Settings,
    user: User,
    key: str,
    verdict: Wrong,
    tries: int,
    client: ClientInfo,
) -> auth.AuthFailure:
    """A wrong code: audited, counted toward the address's lockout; the answer."""
    await audit.record(
        session,
        event="mfa_failed",
        user_id=user.id,
        client=client,
        reason=verdict.code,
        tries_left=MAX_TRIES - tries,
    )
    paused = await auth.count_failure(
        session, settings=settings, key=key, user=user, client=client, reason=verdict.code
    )
    return paused or auth.AuthFailure(verdict.status, verdict.code, verdict.detail)
