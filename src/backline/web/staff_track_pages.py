"""The staff track queue: submitted tracks oldest first, each with its details, its audio to
listen to through a short-lived signed link, and claim, approve and reject (with a reason).

Staff only (`StaffViewer`): everyone else gets 403 `forbidden_role`, as from
`/api/admin/tracks`. The
actions call `tracks.review`, the service behind that API, and a rejection's reason is checked
by the API's own `RejectRequest`, its error shown beside the track's reason field.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import User
from backline.deps import SessionDep
from backline.errors import ProblemError
from backline.routing import router
from backline.tracks import links, review
from backline.tracks import service as tracks
from backline.tracks.models import Track, TrackStatus
from backline.tracks.routes import RejectRequest
from backline.web.media_policy import media_page_headers
from backline.web.render import field_errors, page
from backline.web.viewer import StaffViewer, Viewer, checked_form

pages = router(public=True, include_in_schema=False)
QUEUE = "/staff/tracks"
SHOWN = 50


async def _queue_page(
    request: Request, session: AsyncSession, *, viewer: Viewer, status: int = 200, **context: Any
) -> HTMLResponse:
    state = request.app.state
    rows: list[tracks.TrackRow] = []
    for step in (TrackStatus.IN_REVIEW, TrackStatus.SUBMITTED):
        found, _ = await tracks.list(
            session, where=tracks.TrackFilter(status=step.value), oldest_first=True, limit=SHOWN
        )
        rows += found
    ids = [row.id for row in rows if row.audio_key is not None]
    with_audio = (await session.scalars(select(Track).where(Track.id.in_(ids)))).all()
    urls = {
        track.id: await links.audio_url(track, storages=state.storages, settings=state.settings)
        for track in with_audio
    }
    waiting = [tracks.public_dict(row) | {"audio_url": urls.get(row.id)} for row in rows]
    return page(
        "staff_tracks.html", status, headers=media_page_headers(state.settings),
        title="Track review", viewer=viewer, tracks=waiting, **context,
    )  # fmt: skip


@pages.get(QUEUE, response_class=HTMLResponse)
async def queue(viewer: StaffViewer, request: Request, session: SessionDep) -> Response:
    return await _queue_page(request, session, viewer=viewer)


@pages.post(QUEUE + "/{track_id}/{action}", response_class=HTMLResponse)
async def decide(
    viewer: StaffViewer, track_id: uuid.UUID, action: str, request: Request, session: SessionDep
) -> Response:
    form = await checked_form(request, viewer)
    reviewer = await session.get(User, viewer.user.id)
    if reviewer is None or action not in ("claim", "approve", "reject"):
        return RedirectResponse(QUEUE, status_code=303)
    reason = None
    if action == "reject":
        typed = form.get("reason", "")[:1000]
        try:
            reason = RejectRequest.model_validate({"reason": typed}).reason.strip()
        except ValidationError as exc:
            field = f"reason-{track_id}"
            return await _queue_page(
                request, session, viewer=viewer, status=422,
                errors={field: field_errors(exc)["reason"]}, values={field: typed},
            )  # fmt: skip
    try:
        track = await review.reviewable(session, track_id=track_id)
        if action == "claim":
            await review.claim(session, track=track, reviewer=reviewer)
        else:
            await review.decide(
                session, settings=request.app.state.settings, track=track, reviewer=reviewer,
                approve=action == "approve", reason=reason,
            )  # fmt: skip
    except ProblemError as exc:
        await session.rollback()  # nothing of the refused change is kept
        async with request.app.state.sessionmaker() as fresh:
            return await _queue_page(
                request, fresh, viewer=viewer, status=exc.status, error=exc.detail
            )
    return RedirectResponse(QUEUE, status_code=303)
