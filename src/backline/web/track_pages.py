"""The artist's tracks page: each track with its status and what it still misses, a form to
start a draft, and a button to send a complete draft for review (here, or from the track's
own page: `track_edit_pages`).

Drafts are made by `tracks.service.create` from the API's `TrackCreate`, and sent by
`tracks.service.submit`, which refuses an incomplete track with the list of what is missing.
Only artists may make tracks, as through `/api/tracks`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import Role, User
from backline.deps import SessionDep
from backline.errors import Forbidden, ProblemError
from backline.routing import router
from backline.tracks import service as tracks
from backline.tracks.schemas import TrackCreate
from backline.web.render import field_errors, page
from backline.web.track_edit_pages import edit_page
from backline.web.viewer import Viewer, checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)


async def _tracks_page(
    session: AsyncSession, *, viewer: Viewer, status: int = 200, **context: Any
) -> HTMLResponse:
    rows, _ = await tracks.list(session, where=tracks.TrackFilter(owner_id=viewer.user.id))
    listed = [
        {
            "id": row.id,
            "title": row.title,
            "status": row.status,
            "missing": tracks.missing(row),  # type: ignore[arg-type]
        }
        for row in rows
    ]
    is_artist = viewer.user.role == Role.ARTIST
    return page(
        "tracks.html", status, title="Tracks", viewer=viewer, tracks=listed, is_artist=is_artist,
        **context,
    )  # fmt: skip


async def _artist(request: Request, session: AsyncSession) -> tuple[Viewer, User] | None:
    viewer = await optional_viewer(request)
    if viewer is None:
        return None
    if viewer.user.role != Role.ARTIST:
        raise Forbidden("This needs the artist role.", code="forbidden_role")
    user = await session.get(User, viewer.user.id)
    return (viewer, user) if user is not None else None


@pages.get("/tracks", response_class=HTMLResponse)
async def tracks_page(request: Request, session: SessionDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    return await _tracks_page(session, viewer=viewer)


@pages.post("/tracks", response_class=HTMLResponse)
async def create(request: Request, session: SessionDep) -> Response:
    found = await _artist(request, session)
    if found is None:
        return to_sign_in()
    viewer, user = found
    form = await checked_form(request, viewer)
    values = {"title": form.get("title", "")[:400]}
    try:
        data = TrackCreate.model_validate(values)
    except ValidationError as exc:
        return await _tracks_page(
            session, viewer=viewer, status=422, values=values, errors=field_errors(exc)
        )
    await tracks.create(session, owner=user, data=data)
    return RedirectResponse("/tracks", status_code=303)


@pages.post("/tracks/{track_id}/submit", response_class=HTMLResponse)
async def submit(track_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    found = await _artist(request, session)
    if found is None:
        return to_sign_in()
    viewer, user = found
    form = await checked_form(request, viewer)
    from_track_page = form.get("back") == "track"
    try:
        track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
        await tracks.submit(session, track=track)
    except ProblemError as exc:
        await session.rollback()  # nothing of the refused change is kept
        async with request.app.state.sessionmaker() as fresh:
            if from_track_page and exc.code != "not_found":
                again = await tracks.get_own(fresh, track_id=track_id, owner=viewer.user)
                return await edit_page(
                    request, again, viewer=viewer, status=exc.status, error=exc.detail
                )
            return await _tracks_page(fresh, viewer=viewer, status=exc.status, error=exc.detail)
    if from_track_page:
        return RedirectResponse(f"/tracks/{track_id}?done=submitted", status_code=303)
    return RedirectResponse("/tracks", status_code=303)
