"""A person's artist applications in account export and deletion (see
`backline.accounts.holdings`).

The export lists every application with its state, reasons and dates. Deletion removes them
all; the audit log's entries about them stay, naming the person and application by ID only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.artists import service
from backline.storage import Storages


async def export(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    return await service.export(session, user_id=user.id)


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    await service.erase(session, user_id=user.id)
    return None


holdings.register(name="artist_applications", export=export, erase=erase)
