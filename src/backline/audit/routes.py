"""`GET /api/admin/audit-events`: the security audit log, for staff, newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from backline import pagination
from backline.accounts.deps import RequireRole
from backline.apidoc.declare import raises
from backline.audit import service as audit
from backline.deps import SessionDep
from backline.routing import router

staff = router(prefix="/api/admin", tags=["admin"], dependencies=[RequireRole("staff")])


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    event: str
    user_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_cursor: str | None


@staff.get("/audit-events")
@raises(pagination.INVALID_CURSOR)
async def list_events(
    session: SessionDep,
    user_id: uuid.UUID | None = None,
    event: Annotated[str | None, Query(max_length=48, pattern=r"^[a-z_]+$")] = None,
    cursor: pagination.CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    rows = await audit.list(
        session,
        user_id=user_id,
        event=event,
        before=pagination.decode(cursor) if cursor else None,
        limit=limit + 1,
    )
    items = [AuditEventPublic.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    return AuditPage(
        items=items,
        next_cursor=pagination.encode(items[-1].created_at, items[-1].id)
        if more and items
        else None,
    )
