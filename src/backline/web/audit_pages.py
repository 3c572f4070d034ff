"""The staff view of the security audit log: newest first, a page at a time.

The same rows as `GET /api/admin/audit-events`, read by `audit.service.list`, narrowed to one
event name or one account if asked; the "Older events" link carries the cursor of
`backline.pagination`, so a page stays right while events are added. Everyone but staff and
admins gets 403 `forbidden_role` (`StaffViewer`).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from backline import pagination
from backline.audit import service as audit
from backline.deps import SessionDep
from backline.routing import router
from backline.web.render import page
from backline.web.viewer import StaffViewer

pages = router(public=True, include_in_schema=False)
PAGE_SIZE = 50
EVENT_NAME = re.compile(r"[a-z_]{1,48}")


@pages.get("/staff/audit", response_class=HTMLResponse)
async def audit_page(
    viewer: StaffViewer,
    session: SessionDep,
    event: Annotated[str, Query(max_length=48)] = "",
    user: Annotated[str, Query(max_length=36)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    event, user = event.strip(), user.strip()
    errors: dict[str, str] = {}
    if event and not EVENT_NAME.fullmatch(event):
        errors["event"] = "An event name is lowercase letters and underscores."
    try:
        user_id = uuid.UUID(user) if user else None
    except ValueError:
        errors["user"] = "An account ID looks like 0f8c5b2e-…, as in the log."
        user_id = None
    values = {"event": event, "user": user}
    if errors:
        return page(
            "staff_audit.html", 422, title="Audit log", viewer=viewer, events=[],
            values=values, errors=errors, older=None,
        )  # fmt: skip
    before = pagination.decode(cursor) if cursor else None  # a stranger cursor is 400
    rows = await audit.list(
        session, user_id=user_id, event=event or None, before=before, limit=PAGE_SIZE + 1
    )
    shown = rows[:PAGE_SIZE]
    asked = {k: v for k, v in values.items() if v}
    older = None
    if len(rows) > PAGE_SIZE and shown:
        query = dict(asked)
        query["cursor"] = pagination.encode(shown[-1].created_at, shown[-1].id)
        older = "/staff/audit?" + urlencode(query)
    return page(
        "staff_audit.html", title="Audit log", viewer=viewer, events=shown, values=values,
        older=older, newest="/staff/audit?" + urlencode(asked) if cursor else None,
    )  # fmt: skip
