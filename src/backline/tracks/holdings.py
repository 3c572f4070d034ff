"""A person's tracks in account export and deletion (see `backline.accounts.holdings`).

Deletion removes the person's drafts, rows first; their stored audio and artwork are deleted
once the deletion has committed. Tracks already submitted or reviewed are the platform's
record and stay, owned by no one.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.storage import Storages
from backline.tracks import service
from backline.tracks.verifier import discard


async def export(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    return await service.export(session, owner_id=user.id)


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    drafts = await service.delete_drafts(session, owner_id=user.id)
    return partial(discard, storages, drafts) if drafts else None


holdings.register(name="tracks", export=export, erase=erase)
