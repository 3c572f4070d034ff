"""Account rules, callable without HTTP. Functions take a session and never commit."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.emails import normalize_email
from backline.accounts.models import Role, User
from backline.accounts.passwords import check_length, hash_password
from backline.db import utcnow
from backline.errors import Conflict, Unprocessable


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    normalized = normalize_email(email)
    result = await session.execute(select(User).where(func.lower(User.email) == normalized))
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
    name = display_name.strip()
    if not 1 <= len(name) <= 100:
        raise Unprocessable(
            "A display name of 1 to 100 characters is required.", code="invalid_display_name"
        )
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
