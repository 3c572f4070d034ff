"""A person's linked identities in account export and deletion (see `backline.accounts.holdings`).

The export lists each identity (provider, subject, email, when linked); deletion removes them,
and any sign-in under way for the account.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.oidc import service
from backline.oidc.models import OidcAttempt, OidcIdentity
from backline.storage import Storages


async def export(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    return [
        {
            "provider": row.provider,
            "subject": row.subject,
            "email": row.email,
            "linked_at": row.linked_at.isoformat(),
        }
        for row in await service.identities(session, user_id=user.id)
    ]


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    await session.execute(delete(OidcIdentity).where(OidcIdentity.user_id == user.id))
    await session.execute(delete(OidcAttempt).where(OidcAttempt.user_id == user.id))
    return None


holdings.register(name="oidc_identities", export=export, erase=erase)
