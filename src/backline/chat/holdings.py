"""A person's assistant conversations in account export and deletion (see
`backline.accounts.holdings`): all of them exported with their messages, all deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.chat import service
from backline.storage import Storages


async def export(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    return await service.export(session, user_id=user.id)


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    await service.erase(session, user_id=user.id)
    return None


holdings.register(name="chat", export=export, erase=erase)
