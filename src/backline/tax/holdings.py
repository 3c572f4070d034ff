"""A person's tax forms in account export and deletion (see `backline.accounts.holdings`).

The export holds the current form, TIN masked. Deletion keeps what tax law wants kept: every
form still within its retention period stays, sealed as it was, detached from the deleted login
(`user_id` NULL) and, if it was current, superseded as of the deletion, so its retention runs
from then. Forms already past retention are deleted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import holdings
from backline.accounts.models import User
from backline.db import settings_of, utcnow
from backline.errors import NotFound
from backline.storage import Storages
from backline.tax import service
from backline.tax.models import TaxForm


async def export(session: AsyncSession, user: User) -> dict[str, Any] | None:
    try:
        form = await service.current(session, user_id=user.id)
    except NotFound:
        return None
    return service.public(settings_of(session).key_ring, form).model_dump(mode="json")


async def erase(
    session: AsyncSession, user: User, storages: Storages
) -> holdings.AfterCommit | None:
    now = utcnow()
    years = settings_of(session).tax_retention_years
    await session.execute(
        delete(TaxForm).where(
            TaxForm.user_id == user.id,
            TaxForm.superseded_at < service.retention_cutoff(now, years),
        )
    )
    await session.execute(
        update(TaxForm)
        .where(TaxForm.user_id == user.id, TaxForm.superseded_at.is_(None))
        .values(superseded_at=now)
    )
    await session.execute(update(TaxForm).where(TaxForm.user_id == user.id).values(user_id=None))
    return None


holdings.register(name="tax_form", export=export, erase=erase)
