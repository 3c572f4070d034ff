"""Account rules, callable without HTTP. Functions take a session and never commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy import delete as sa_delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from backline.accounts.emails import normalize_email
from backline.accounts.models import AuthSession, Role, User
from backline.accounts.names import check_display_name
from backline.accounts.passwords import check_length, hash_password
from backline.accounts.schemas import UserPublic
from backline.audit.models import AuditEvent
from backline.db import run_once, utcnow
from backline.email.models import OutboxEmail
from backline.errors import Conflict

_users = User.__table__
# Built once, on the table's columns: no ORM entities to compile or load (a third of the cost).
_PUBLIC = select(
    _users.c.id,
    _users.c.email,
    _users.c.display_name,
    _users.c.role,
    _users.c.email_verified_at.is_not(None).label("email_verified"),
    _users.c.created_at,
).where(_users.c.id == bindparam("user_id"))


async def get_public(engine: AsyncEngine, *, user_id: uuid.UUID) -> UserPublic | None:
    """The account as its owner sees it, or None when it is gone: one statement on a
    connection of its own (`db.run_once`; give an autocommit engine).

    Read as one row of plain columns rather than as a `User`: it is what every signed-in page
    asks first, and building a tracked ORM object costs more than the query."""
    rows = await run_once(engine, _PUBLIC, {"user_id": user_id})
    return UserPublic.model_validate(rows[0]._mapping) if rows else None


_BY_EMAIL = select(User).where(func.lower(User.email) == bindparam("email"))  # built once


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    result = await session.execute(_BY_EMAIL, {"email": normalize_email(email)})
    return result.scalar_one_or_none()


async def create(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    display_name: str,
    role: Role = Role.USER,
    verified: bool = False,
) -> User:
    """Add a user; `Conflict` (409 `email_taken`) when the address is already registered."""
    normalized = normalize_email(email)
    check_length(password)
    name = check_display_name(display_name)
    if await get_by_email(session, email=normalized) is not None:
        raise Conflict("An account with this email already exists.", code="email_taken")
    user = User(
        email=normalized,
        display_name=name,
        role=role.value,
        password_hash=await hash_password(password),
        email_verified_at=utcnow() if verified else None,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("An account with this email already exists.", code="email_taken") from None
    return user


async def update(session: AsyncSession, *, user: User, display_name: str | None) -> User:
    if display_name is not None:
        user.display_name = check_display_name(display_name)
    return user


async def delete(session: AsyncSession, *, user: User) -> None:
    """Remove the person: their row, sessions and tokens (by cascade) and mail still queued
    to them. The audit trail keeps only the bare user ID, which now names no one."""
    await session.execute(
        sa_delete(OutboxEmail)
        .where(func.lower(OutboxEmail.to_address) == user.email.lower())
        .execution_options(synchronize_session=False)
    )
    await session.delete(user)
    await session.flush()


async def export(session: AsyncSession, *, user: User) -> dict[str, Any]:
    """Everything held about the user, as JSON-ready data."""
    sessions = (
        await session.scalars(select(AuthSession).where(AuthSession.user_id == user.id))
    ).all()
    events = (
        await session.scalars(
            select(AuditEvent).where(AuditEvent.user_id == user.id).order_by(AuditEvent.created_at)
        )
    ).all()
    emails = (
        await session.scalars(
            select(OutboxEmail)
            .where(func.lower(OutboxEmail.to_address) == user.email.lower())
            .order_by(OutboxEmail.created_at)
        )
    ).all()
    return {
        "exported_at": utcnow().isoformat(),
        "profile": {
            "id": str(user.id),
            "email": user.email,
            "display_name": user.display_name,
            "role": user.role,
            "email_verified_at": _iso(user.email_verified_at),
            "password_changed_at": _iso(user.password_changed_at),
            "created_at": _iso(user.created_at),
            "updated_at": _iso(user.updated_at),
        },
        "sessions": [
            {
                "id": str(s.id),
                "user_agent": s.user_agent,
                "ip": s.ip,
                "created_at": _iso(s.created_at),
                "last_used_at": _iso(s.last_used_at),
                "expires_at": _iso(s.expires_at),
                "revoked_at": _iso(s.revoked_at),
            }
            for s in sessions
        ],
        "security_events": [
            {
                "event": e.event,
                "at": _iso(e.created_at),
                "ip": e.ip,
                "user_agent": e.user_agent,
                "details": e.details,
            }
            for e in events
        ],
        "emails": [
            {
                "template": m.template,
                "subject": m.subject,
                "status": m.status,
                "queued_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
            }
            for m in emails
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
