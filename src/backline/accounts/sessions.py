"""An account's open sessions: listed a page at a time, and never more than BACKLINE_MAX_SESSIONS.

Each sign-in opens a session; a script signing in over and over would otherwise pile up
sessions (and refresh tokens) without end. When a sign-in takes an account past the cap, the
sessions used least recently are ended, in one UPDATE that finds them itself: a sign-in well
under the cap pays for that one statement and nothing else. The ended sessions are announced to
the revocation check (their access tokens stop at once) and recorded as one `sessions_capped`
audit event. Sessions locked by a concurrent sign-in or refresh are skipped rather than waited
for, so that sign-ins to one account never wait on each other (or deadlock) over the cap.

The list is newest first, paged by `backline.pagination` cursors on (created_at, id): unlike
the last use, those never change, so a page boundary holds while sessions are refreshed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backline.accounts.models import AuthSession
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import now
from backline.audit import service as audit
from backline.audit.models import AuditEvent
from backline.context import ClientInfo
from backline.errors import ServiceUnavailable
from backline.logging import get_logger
from backline.metrics import SESSIONS_REVOKED
from backline.pagination import Position, older_than

log = get_logger(__name__)
CAPPED_REASON = "session_limit"

_sessions = cast(Table, AuthSession.__table__)
_events = cast(Table, AuditEvent.__table__)

# Built once (sign-in is hot). The open sessions of the account but the one just opened, most
# recently used first; those past the first `keep` are ended.
_BEYOND_CAP = (
    select(_sessions.c.id)
    .where(
        _sessions.c.user_id == bindparam("owner"),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > bindparam("now"),
        _sessions.c.id != bindparam("kept"),
    )
    .order_by(_sessions.c.last_used_at.desc(), _sessions.c.created_at.desc(), _sessions.c.id.desc())
    .offset(bindparam("keep"))
    # Concurrent sign-ins to one account would each lock the same sessions, in whatever order
    # their plans meet them, and deadlock; a session another sign-in (or a refresh) holds is
    # left to it. The cap may then be passed for a moment; the next sign-in restores it.
    .with_for_update(skip_locked=True)
)
_CAP = (
    update(_sessions)
    .where(_sessions.c.id.in_(_BEYOND_CAP.scalar_subquery()))
    .values(revoked_at=bindparam("now"), revoked_reason=CAPPED_REASON)
    .returning(_sessions.c.id)
)
_ADD_EVENT = _events.insert()


async def cap(
    connection: AsyncConnection,
    *,
    revocations: Revocations,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    limit: int,
    client: ClientInfo,
) -> list[uuid.UUID]:
    """End the account's least recently used sessions beyond `limit`, `session_id` kept.

    Runs on the sign-in's own connection (`signin.writing`), after the session is opened;
    returns the sessions ended.
    """
    params = {"owner": user_id, "kept": session_id, "now": now(), "keep": limit - 1}
    ended = list((await connection.execute(_CAP, params)).scalars())
    if not ended:
        return ended
    SESSIONS_REVOKED.labels(CAPPED_REASON).inc(len(ended))
    await connection.execute(
        _ADD_EVENT,
        audit.values(
            event="sessions_capped",
            user_id=user_id,
            client=client,
            session_id=str(session_id),
            sessions_ended=[str(ended_id) for ended_id in ended],
        ),
    )
    try:
        await revocations.revoked(ended)
    except ServiceUnavailable:
        # The sign-in stands: the ended sessions' refresh tokens are refused by the database
        # already, and their access tokens lapse within minutes. Failing the sign-in for it
        # would lock people out while Redis is away.
        log.warning("sessions_capped_not_published", sessions=len(ended))
    return ended


async def page(
    session: AsyncSession, *, user_id: uuid.UUID, before: Position | None, limit: int
) -> Sequence[AuthSession]:
    """Up to `limit` open sessions of the account, newest first, older than `before`."""
    query = select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > now(),
    )
    if before is not None:
        query = query.where(older_than(AuthSession.created_at, AuthSession.id, before))
    query = query.order_by(AuthSession.created_at.desc(), AuthSession.id.desc()).limit(limit)
    return (await session.scalars(query)).all()
