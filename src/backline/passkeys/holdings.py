"""A person's passkeys in account export and deletion (see `backline.accounts.holdings`): the
export lists each one's name and dates (no key material), deletion removes them all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.passkeys import service
from backline.passkeys.models import Passkey, PasskeyChallenge
from backline.storage import Storages


async def export(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    return [
        {
            "id": str(p.id),
            "name": p.name,
            "created_at": p.created_at.isoformat(),
            "last_used_at": p.last_used_at.isoformat() if p.last_used_at else None,
        }
        for p in await service.list_own(session, user_id=user.id)
    ]


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    await session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    await session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.user_id == user.id))
    return None


holdings.register(name="passkeys", export=export, erase=erase)
