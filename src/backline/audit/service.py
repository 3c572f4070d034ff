"""Recording security events, and reading them back for staff and for the person concerned.

`record` adds an event to the caller's transaction: it is kept exactly when the change it
describes is. Events carry the request ID, client address and user agent of the request.
`values` is an event's row for a caller that writes it within a statement of its own (sign-in
writes its session, refresh token and event in one).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.audit.models import AuditEvent
from backline.context import ClientInfo, current_request_id
from backline.db import utcnow
from backline.pagination import Position, older_than


def values(
    *,
    event: str,
    user_id: uuid.UUID | None,
    client: ClientInfo | None,
    actor_id: uuid.UUID | None = None,
    **details: Any,
) -> dict[str, Any]:
    """An event's row as column values, for a caller that writes it in a statement of its own."""
    return {
        "id": uuid.uuid4(),
        "created_at": utcnow(),
        "event": event,
        "user_id": user_id,
        "actor_id": actor_id if actor_id is not None else user_id,
        "ip": client.ip if client else None,
        "user_agent": client.user_agent if client else None,
        "request_id": current_request_id(),
        "details": details,
    }


async def record(
    session: AsyncSession,
    *,
    event: str,
    user_id: uuid.UUID | None,
    client: ClientInfo | None,
    actor_id: uuid.UUID | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an event and flush it."""
    row = AuditEvent(
        **values(event=event, user_id=user_id, client=client, actor_id=actor_id, **details)
    )
    session.add(row)
    await session.flush()
    return row


async def list(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None = None,
    event: str | None = None,
    before: Position | None = None,
    limit: int = 50,
) -> Sequence[AuditEvent]:
    """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
    query = select(AuditEvent)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if event is not None:
        query = query.where(AuditEvent.event == event)
    if before is not None:
        query = query.where(older_than(AuditEvent.created_at, AuditEvent.id, before))
    query = query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return (await session.scalars(query)).all()
