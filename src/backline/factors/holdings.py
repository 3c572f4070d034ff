"""Second factors in account export and deletion (see `backline.accounts.holdings`).

The export lists each factor's kind and dates (and how many recovery codes are left), never
a secret or a code. Deletion removes the factors, recovery codes and open challenges.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.db import settings_of
from backline.factors import service
from backline.factors.models import MfaChallenge, RecoveryCode, TotpFactor
from backline.storage import Storages


async def export(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    found = await service.state(session, settings=settings_of(session), user=user)
    return service.exported(found)


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    for table in (MfaChallenge, RecoveryCode, TotpFactor):
        await session.execute(delete(table).where(table.user_id == user.id))
    return None


holdings.register(name="second_factors", export=export, erase=erase)
