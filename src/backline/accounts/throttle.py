"""Failed-password throttling, keyed by the address typed, not by the account.

Five wrong passwords for one address within 15 minutes pause sign-in for that address for
1, 2, 4 ... up to 60 minutes. The state lives in `login_throttles`, one row per address digest
(SHA-256 of the normalized address, so the table holds no addresses), and it is kept the same
way whether or not an account exists: a stranger learns nothing from being paused.

Counting is one atomic upsert (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), so concurrent
guesses are all counted; the lock is taken by whichever failure reaches the threshold, in an
`UPDATE` only one of them can win. Everything runs in the caller's transaction, which commits
a failure before answering it (see `auth.AuthFailure`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, and_, bindparam, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backline.accounts.emails import InvalidEmail, normalize_email
from backline.accounts.tokens import now
from backline.db import Base, connection_of

WINDOW = timedelta(minutes=15)
LOCK_BASE = timedelta(minutes=1)
LOCK_CAP = timedelta(minutes=60)


class LoginThrottle(Base):
    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime | None] = mapped_column(default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None, index=True)
    lock_level: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=now)


@dataclass(frozen=True)
class Failure:
    locked_until: datetime | None  # set when this failure locked the address
    level: int
    paused_for: int | None = None  # seconds: the address was paused already, nothing counted


def key_for(email: str) -> str:
    try:
        normalized = normalize_email(email)
    except InvalidEmail:
        normalized = email.strip().lower()
    return hashlib.sha256(normalized.encode("utf-8", "replace")).hexdigest()


def lock_duration(level: int) -> timedelta:
    longer: timedelta = LOCK_BASE * 2 ** max(0, level - 1)
    return min(LOCK_CAP, longer)


# Built once: building a statement costs more than executing a cached one (sign-in is hot).
_STATE = select(LoginThrottle.locked_until).where(LoginThrottle.key == bindparam("key"))
_CLEAR = delete(LoginThrottle).where(LoginThrottle.key == bindparam("key"))
_CLEAR_UNLESS_PAUSED = _CLEAR.where(
    or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= bindparam("moment"))
)


@dataclass(frozen=True)
class State:
    retry_after: int | None  # seconds until the address may try again; None: not paused


async def state(db: AsyncSession | AsyncConnection, *, key: str) -> State:
    rows = (await (await connection_of(db)).execute(_STATE, {"key": key})).all()
    return state_of(locked_until=rows[0][0] if rows else None)


def state_of(*, locked_until: datetime | None) -> State:
    """The state an address's pause (or its absence) stands for, now."""
    moment = now()
    if locked_until is None or locked_until <= moment:
        return State(None)
    return State(max(1, int((locked_until - moment).total_seconds()) + 1))


async def locked_for(db: AsyncSession | AsyncConnection, *, key: str) -> int | None:
    """Seconds until the address may try again, or None when it is not paused."""
    return (await state(db, key=key)).retry_after


async def failed(session: AsyncSession, *, key: str, threshold: int) -> Failure:
    """Count one wrong password; lock the address when this one reaches the threshold.

    An attempt that was under way when another locked the address is not counted (it would
    only lengthen the owner's pause): `paused_for` tells how long the pause has still to run.
    """
    moment = now()
    fresh = or_(
        LoginThrottle.first_failed_at.is_(None), LoginThrottle.first_failed_at < moment - WINDOW
    )
    paused = and_(LoginThrottle.locked_until.is_not(None), LoginThrottle.locked_until > moment)
    bind = session.get_bind()
    dialect = postgresql if bind.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(LoginThrottle).values(
        key=key, failed_logins=1, first_failed_at=moment, lock_level=0, updated_at=moment
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failed_logins": case((fresh, 1), else_=LoginThrottle.failed_logins + 1),
            "first_failed_at": case((fresh, moment), else_=LoginThrottle.first_failed_at),
            "updated_at": moment,
        },
        where=~paused,
    ).returning(LoginThrottle.failed_logins, LoginThrottle.lock_level)
    counted = (await session.execute(upsert)).first()
    if counted is None:  # paused meanwhile
        return Failure(None, 0, paused_for=(await state(session, key=key)).retry_after or 1)
    count, level = counted
    if count < threshold:
        return Failure(None, level)
    won = await session.scalar(
        update(LoginThrottle)
        .where(LoginThrottle.key == key, LoginThrottle.failed_logins >= threshold)
        .values(
            lock_level=LoginThrottle.lock_level + 1,
            failed_logins=0,
            first_failed_at=None,
            updated_at=moment,
        )
        .returning(LoginThrottle.lock_level)
    )
    if won is None:  # a concurrent failure took the lock
        return Failure(None, level)
    until = moment + lock_duration(won)
    await session.execute(
        update(LoginThrottle).where(LoginThrottle.key == key).values(locked_until=until)
    )
    return Failure(until, won)


async def clear(
    db: AsyncSession | AsyncConnection, *, key: str, unless_paused: bool = False
) -> None:
    """A reset: the address starts afresh. A right password (`unless_paused`): the same, unless
    other attempts have paused the address since it was checked; that pause then stands, in
    the same statement, so no pause committed in between is lost."""
    connection = await connection_of(db)
    if unless_paused:
        await connection.execute(_CLEAR_UNLESS_PAUSED, {"key": key, "moment": now()})
    else:
        await connection.execute(_CLEAR, {"key": key})
