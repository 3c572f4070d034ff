"""Second factors' rules: enrolling and removing TOTP, recovery codes, checking a code.

Functions take the caller's session and never commit. A check that fails is returned as a
`challenge.Wrong`, not raised: what it counted (a lockout step, an audit event) must commit
before the refusal is answered. Nothing is half-enrolled: a TOTP secret counts for nothing
until a code confirms it, and its recovery codes are made in the same transaction as that.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import auth, throttle
from backline.accounts.models import User
from backline.accounts.names import addressee
from backline.accounts.passwords import verify_password
from backline.accounts.tokens import now
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.email import service as outbox
from backline.errors import Conflict
from backline.factors import methods, recovery, totp
from backline.factors.challenge import Proof, Wrong
from backline.factors.methods import RECOVERY_CODE, TOTP
from backline.factors.models import RecoveryCode, TotpFactor

TABLE, COLUMN = "totp_factors", "secret"
WRONG_CODE = Wrong("invalid_mfa_code", "The code is wrong or has expired.")
REUSED_CODE = Wrong("mfa_code_reused", "This code was used already; wait for the next one.")
WRONG_RECOVERY = Wrong("invalid_recovery_code", "The recovery code is wrong.")
USED_RECOVERY = Wrong("recovery_code_used", "This recovery code was used already.")


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


def _seal(settings: Settings, secret: str, row_id: uuid.UUID) -> bytes:
    return settings.key_ring.seal(secret, table=TABLE, column=COLUMN, row_id=row_id)


def _open(settings: Settings, factor: TotpFactor) -> str:
    return settings.key_ring.open(factor.secret, table=TABLE, column=COLUMN, row_id=factor.id)


async def totp_of(session: AsyncSession, *, user_id: uuid.UUID) -> TotpFactor | None:
    found: TotpFactor | None = await session.scalar(
        select(TotpFactor).where(TotpFactor.user_id == user_id)
    )
    return found


def required(settings: Settings, user: User) -> bool:
    """Whether the account's role must sign in with a second factor."""
    return user.role in settings.mfa_required_roles


async def holding(session: AsyncSession, *, user_id: uuid.UUID) -> methods.Holding:
    """The methods the account holds (every registered one: a passkey too), in its session."""
    found = await methods.holding(await session.connection(), user_id=user_id)
    return found or methods.Holding("", ())


async def refuse_last_factor(
    session: AsyncSession, *, settings: Settings, user: User, removing: str
) -> None:
    """409 `factor_required` when the account's role needs a second factor and `removing` is
    the last standalone one it holds. Any method's removal asks this (a passkey's too)."""
    if not required(settings, user):
        return
    if not (await holding(session, user_id=user.id)).has_factor_besides(removing):
        raise Conflict(
            "Your role needs a second factor, so the last one cannot be removed.",
            code="factor_required",
        )


# ----------------------------------------------------------------------------- TOTP


async def start_totp(
    session: AsyncSession, *, settings: Settings, user: User, client: ClientInfo
) -> Enrolment:
    """A new secret, pending until `confirm_totp`; an enrolment under way is started afresh.

    409 `totp_already_enabled` when the account has an active one (disable it first)."""
    factor = await totp_of(session, user_id=user.id)
    if factor is not None and factor.confirmed_at is not None:
        raise Conflict(
            "An authenticator app is set up already; remove it first.",
            code="totp_already_enabled",
        )
    secret = totp.new_secret()
    if factor is None:
        factor_id = uuid.uuid4()
        session.add(
            TotpFactor(id=factor_id, user_id=user.id, secret=_seal(settings, secret, factor_id))
        )
    else:
        factor.secret = _seal(settings, secret, factor.id)
        factor.created_at, factor.last_step = now(), None
    await audit.record(session, event="totp_enrolment_started", user_id=user.id, client=client)
    await session.flush()
    uri = totp.uri(secret, account=user.email)
    return Enrolment(secret, uri, totp.qr_svg(uri))


async def confirm_totp(
    session: AsyncSession, *, settings: Settings, user: User, code: str, client: ClientInfo
) -> Proof | Wrong:
    """Activate the pending secret with a code from it; the proof carries the new recovery
    codes (`extra["recovery_codes"]`), shown this once. 409 `no_totp_enrolment` when no
    enrolment is under way.

    A wrong code is audited (`mfa_enrol_failed`) and changes nothing else: the secret stays
    pending and no recovery code is made. It does not count toward the lockout (the secret was
    just handed to the person asking); the route's rate limit bounds the tries, and during
    sign-in `challenge.redeem` counts it as a wrong second step besides."""
    factor = await totp_of(session, user_id=user.id)
    if factor is None or factor.confirmed_at is not None:
        raise Conflict(
            "No authenticator app is being set up; start again.", code="no_totp_enrolment"
        )
    step = totp.matching_step(_open(settings, factor), code, at=now(), after=None)
    if step is None:
        await audit.record(
            session,
            event="mfa_enrol_failed",
            user_id=user.id,
            client=client,
            reason=WRONG_CODE.code,
        )
        return WRONG_CODE
    moment = now()
    factor.confirmed_at, factor.last_step, factor.last_used_at = moment, step, moment
    codes = await _replace_recovery_codes(session, settings=settings, user_id=user.id)
    await audit.record(session, event="totp_enabled", user_id=user.id, client=client)
    await session.flush()
    return Proof(TOTP, {"recovery_codes": codes})


async def check_totp(
    session: AsyncSession, *, settings: Settings, user: User, code: str
) -> Proof | Wrong:
    """Whether `code` is the active authenticator's, for a step not used before; it is then
    used up (one conditional UPDATE: of two tries with one code, one wins)."""
    factor = await totp_of(session, user_id=user.id)
    if factor is None or factor.confirmed_at is None:
        return WRONG_CODE
    secret = _open(settings, factor)
    moment = now()
    step = totp.matching_step(secret, code, at=moment, after=None)
    if step is None:
        return WRONG_CODE
    won = await session.execute(
        update(TotpFactor)
        .where(
            TotpFactor.id == factor.id,
            (TotpFactor.last_step.is_(None)) | (TotpFactor.last_step < step),
        )
        .values(last_step=step, last_used_at=moment)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return REUSED_CODE
    return Proof(TOTP)


async def removable(session: AsyncSession, *, settings: Settings, user: User) -> TotpFactor:
    """The active authenticator, when it may be removed: 409 `no_factor` without one, 409
    `factor_required` when the account's role needs a second factor and this is its last (a
    passkey counts as one). Checked before any code is used up."""
    factor = await totp_of(session, user_id=user.id)
    if factor is None or factor.confirmed_at is None:
        raise Conflict("No authenticator app is set up.", code="no_factor")
    await refuse_last_factor(session, settings=settings, user=user, removing=TOTP)
    return factor


async def pending_enrolment(
    session: AsyncSession, *, settings: Settings, user: User
) -> Enrolment | None:
    """The enrolment under way, shown again (after a wrong confirming code, say)."""
    factor = await totp_of(session, user_id=user.id)
    if factor is None or factor.confirmed_at is not None:
        return None
    secret = _open(settings, factor)
    uri = totp.uri(secret, account=user.email)
    return Enrolment(secret, uri, totp.qr_svg(uri))


async def disable_totp(
    session: AsyncSession, *, settings: Settings, user: User, client: ClientInfo
) -> None:
    """Remove the authenticator (the caller has checked `removable`, the password and a code).
    The recovery codes go with it: they back up a factor, and there is none left."""
    factor = await removable(session, settings=settings, user=user)
    await session.delete(factor)
    await session.flush()
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await audit.record(session, event="totp_disabled", user_id=user.id, client=client)


# ----------------------------------------------------------------------------- recovery codes


async def _replace_recovery_codes(
    session: AsyncSession, *, settings: Settings, user_id: uuid.UUID
) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = recovery.generate()
    moment = now()
    await session.execute(
        insert(RecoveryCode),
        [
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "code_hash": recovery.digest(settings.signing_key, code),
                "created_at": moment,
            }
            for code in codes
        ],
    )
    return codes


async def regenerate_recovery_codes(
    session: AsyncSession, *, settings: Settings, user: User, client: ClientInfo
) -> list[str]:
    """Ten new codes in place of the old (the caller has checked the password or a code).
    409 `no_factor` without an active authenticator: the codes only back one up."""
    factor = await totp_of(session, user_id=user.id)
    if factor is None or factor.confirmed_at is None:
        raise Conflict("Set up an authenticator app first.", code="no_factor")
    codes = await _replace_recovery_codes(session, settings=settings, user_id=user.id)
    await audit.record(session, event="recovery_codes_generated", user_id=user.id, client=client)
    return codes


async def use_recovery_code(
    session: AsyncSession, *, settings: Settings, user: User, code: str, client: ClientInfo
) -> Proof | Wrong:
    """Use up one recovery code: audited, and the owner is emailed (a code used by someone else
    is how they would learn of it)."""
    hashed = recovery.digest(settings.signing_key, code)
    if hashed is None:
        return WRONG_RECOVERY
    moment = now()
    used = await session.scalar(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == hashed,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=moment)
        .returning(RecoveryCode.id)
    )
    if used is None:
        spent = await session.scalar(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hashed
            )
        )
        return USED_RECOVERY if spent is not None else WRONG_RECOVERY
    left = await _codes_left(session, user_id=user.id)
    await audit.record(
        session, event="recovery_code_used", user_id=user.id, client=client, remaining=left
    )
    await outbox.enqueue(
        session,
        settings=settings,
        template="recovery_code_used",
        to_address=user.email,
        to_name=addressee(user),
        context={"used_at": f"{moment:%Y-%m-%d %H:%M} UTC", "remaining": left},
    )
    return Proof(RECOVERY_CODE, {"remaining": left})


async def _codes_left(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    left = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(left or 0)


# ----------------------------------------------------------------------------- checks


async def check_code(
    session: AsyncSession, *, settings: Settings, user: User, code: str, client: ClientInfo
) -> Proof | Wrong:
    """An authenticator code (six digits) or else a recovery code."""
    if totp.normalize(code) is not None:
        return await check_totp(session, settings=settings, user=user, code=code)
    return await use_recovery_code(session, settings=settings, user=user, code=code, client=client)


async def prove(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    client: ClientInfo,
    password: str | None,
    code: str | None,
) -> auth.AuthFailure | None:
    """Re-check a signed-in person with what they sent (the password, a code, or both): None
    when all of it is right. A wrong password or code counts toward the address's lockout, as
    at sign-in; the failure is returned for the route to answer after committing that.

    Unlike a sign-in, a right answer here clears no count: with a stolen session and the
    password, guessing codes would otherwise never lock (each right password clearing the
    count that the wrong code before it added)."""
    key = throttle.key_for(user.email)
    if (retry := await throttle.locked_for(session, key=key)) is not None:
        return auth.locked(retry)
    if password is not None and not await verify_password(user.password_hash, password):
        paused = await auth.count_failure(
            session, settings=settings, key=key, user=user, client=client
        )
        return paused or auth.AuthFailure(403, "invalid_credentials", "The password is wrong.")
    if code is not None:
        verdict = await check_code(session, settings=settings, user=user, code=code, client=client)
        if isinstance(verdict, Wrong):
            await audit.record(
                session, event="mfa_failed", user_id=user.id, client=client, reason=verdict.code
            )
            paused = await auth.count_failure(
                session, settings=settings, key=key, user=user, client=client, reason=verdict.code
            )
            return paused or auth.AuthFailure(403, verdict.code, verdict.detail)
    return None


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class State:
    totp_enabled: bool
    totp_pending: bool
    totp_created_at: datetime | None
    totp_last_used_at: datetime | None
    recovery_codes_left: int
    recovery_codes_created_at: datetime | None
    recovery_codes_last_used_at: datetime | None
    required: bool
    methods: tuple[str, ...] = ()  # what a sign-in challenge would offer (a passkey too)

    @property
    def required_met(self) -> bool:
        """The role needs no second factor, or the account holds one (TOTP or a passkey)."""
        return not self.required or bool(self.methods)


async def state(session: AsyncSession, *, settings: Settings, user: User) -> State:
    factor = await totp_of(session, user_id=user.id)
    codes = (
        await session.execute(
            select(
                func.count(RecoveryCode.id).filter(RecoveryCode.used_at.is_(None)),
                func.min(RecoveryCode.created_at),
                func.max(RecoveryCode.used_at),
            ).where(RecoveryCode.user_id == user.id)
        )
    ).one()
    active = factor is not None and factor.confirmed_at is not None
    return State(
        totp_enabled=active,
        totp_pending=factor is not None and not active,
        totp_created_at=factor.confirmed_at if active and factor else None,
        totp_last_used_at=factor.last_used_at if active and factor else None,
        recovery_codes_left=int(codes[0] or 0),
        recovery_codes_created_at=codes[1],
        recovery_codes_last_used_at=codes[2],
        required=required(settings, user),
        methods=(await holding(session, user_id=user.id)).methods,
    )


def exported(found: State) -> list[dict[str, Any]]:
    """The factors as the account export lists them: kind and dates, never a secret or code."""
    listed: list[dict[str, Any]] = []
    if found.totp_enabled:
        listed.append(
            {
                "kind": TOTP,
                "created_at": _iso(found.totp_created_at),
                "last_used_at": _iso(found.totp_last_used_at),
            }
        )
    if found.recovery_codes_created_at is not None:
        listed.append(
            {
                "kind": "recovery_codes",
                "created_at": _iso(found.recovery_codes_created_at),
                "last_used_at": _iso(found.recovery_codes_last_used_at),
                "remaining": found.recovery_codes_left,
            }
        )
    return listed


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
