"""Everything held about a person, exported or erased: the work behind `GET /api/me/export` and
`DELETE /api/me`, shared with the portal's account page.

Both reach every domain through the `holdings` registry. Functions take the caller's session and
never commit; `close` returns the work to run once the caller's transaction has committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import auth, holdings
from backline.accounts import service as accounts
from backline.accounts.models import User
from backline.accounts.revocation import Revocations
from backline.audit import service as audit
from backline.context import ClientInfo
from backline.storage import Storages


async def export_all(session: AsyncSession, *, user: User) -> dict[str, Any]:
    """The account and each domain's part, as JSON-ready data."""
    exported = await accounts.export(session, user=user)
    exported.update(await holdings.export(session, user=user))
    return exported


async def close(
    session: AsyncSession,
    *,
    revocations: Revocations,
    user: User,
    storages: Storages,
    client: ClientInfo,
) -> list[holdings.AfterCommit]:
    """End every session, erase what each domain holds, remove the account.

    The caller has checked the password (`auth.check_password_again`)."""
    await auth.end_sessions(
        session, revocations=revocations, user_id=user.id, reason="account_deleted"
    )
    await audit.record(session, event="account_deleted", user_id=user.id, client=client)
    later = await holdings.erase(session, user=user, storages=storages)
    await accounts.delete(session, user=user)
    return later
