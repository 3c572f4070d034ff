"""The staff portal: the artist application queue, with claim, approve and reject.

Every staff page takes its viewer from `StaffViewer`: nobody signed in is sent to sign in, and
everyone but staff and admins gets 403 `forbidden_role`, as from `/api/admin/*`. The actions
call `artists.review`, the service behind the admin API.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import User
from backline.artists import review
from backline.artists.models import ApplicationStatus
from backline.artists.schemas import RejectRequest
from backline.config import Settings
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import ProblemError
from backline.routing import router
from backline.web.render import page
from backline.web.viewer import StaffViewer, Viewer, checked_form

pages = router(public=True, include_in_schema=False)


@pages.get("/staff", response_class=HTMLResponse)
async def staff_page(viewer: StaffViewer, session: SessionDep, settings: SettingsDep) -> Response:
    return await _queue_page(session, settings=settings, viewer=viewer)


async def _queue_page(
    session: AsyncSession, *, settings: Settings, viewer: Viewer, status: int = 200, error: str = ""
) -> HTMLResponse:
    shown = []
    for state in (ApplicationStatus.IN_REVIEW, ApplicationStatus.SUBMITTED):
        rows, _ = await review.queue(session, status=state.value, limit=50)
        shown += [review.view(found, applicant, settings=settings) for found, applicant in rows]
    return page(
        "staff.html", status, title="Staff", viewer=viewer, applications=shown, error=error or None
    )


@pages.post("/staff/applications/{application_id}/{action}")
async def decide(
    viewer: StaffViewer,
    application_id: uuid.UUID,
    action: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    form = await checked_form(request, viewer)
    reviewer = await session.get(User, viewer.user.id)
    if reviewer is None or action not in ("claim", "approve", "reject"):
        return RedirectResponse("/staff", status_code=303)
    client = client_info(request)
    try:
        if action == "claim":
            await review.claim(
                session, application_id=application_id, reviewer=reviewer, client=client
            )
        else:
            reason = None
            if action == "reject":
                given = {"reason": form.get("reason", "")[:1000]}
                reason = RejectRequest.model_validate(given).reason
            await review.decide(
                session, settings=settings, application_id=application_id, reviewer=reviewer,
                approve=action == "approve", reason=reason, client=client,
            )  # fmt: skip
    except ValidationError:
        error = "A reason for rejecting needs 3 to 1,000 characters."
        return await _queue_page(session, settings=settings, viewer=viewer, status=422, error=error)
    except ProblemError as exc:
        await session.rollback()  # nothing of the refused change is kept
        async with request.app.state.sessionmaker() as fresh:
            return await _queue_page(
                fresh, settings=settings, viewer=viewer, status=exc.status, error=exc.detail
            )
    return RedirectResponse("/staff", status_code=303)
