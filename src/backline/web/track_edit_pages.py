"""The artist's page for one track: its details (title, artists, genre, language, release
date, ISRC, credits and splits), its audio and artwork, and sending it for review.

The details form is checked by the API's own `TrackUpdate` and saved by `tracks.service.update`,
so the page refuses what `PATCH /api/tracks/{id}` refuses, each error beside its field. Only the
owner sees a track here; anyone else gets the same 404 as for no track at all. The upload forms
post to `track_upload_pages` (without JavaScript), or `static/upload.js` sends the file through
the API with a progress bar.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.deps import SessionDep
from backline.errors import ProblemError
from backline.routing import router
from backline.storage.s3 import S3Storage
from backline.tracks import links
from backline.tracks import service as tracks
from backline.tracks.models import EDITABLE, PENDING, Track
from backline.tracks.schemas import TrackUpdate
from backline.web import track_forms
from backline.web.media_policy import media_page_headers
from backline.web.render import page
from backline.web.viewer import Viewer, checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)

NOTICES = {
    "saved": "Your changes are saved.",
    "audio": "The audio is uploaded.",
    "artwork": "The artwork is uploaded.",
    "submitted": "The track is sent for review.",
}
UPLOAD_ERRORS = {
    "invalid_audio": "The uploaded file is not audio we can read.",
    "digest_mismatch": "The file changed on the way; upload it again.",
    "upload_expired": "The upload took too long; upload it again.",
}


async def edit_page(
    request: Request,
    track: Track,
    *,
    viewer: Viewer,
    status: int = 200,
    values: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The track's page; `values` are what was typed when a form is shown again."""
    app = request.app.state
    shown = tracks.public_dict(track)
    values = values if values is not None else track_forms.track_values(shown)
    errors: dict[str, str] = context.pop("errors", {})
    audio_url = None
    if track.audio_key is not None:
        audio_url = await links.audio_url(track, storages=app.storages, settings=app.settings)
    upload = track.upload_state
    if upload == "failed" and "audio" not in errors:
        code = track.upload_error or ""
        errors["audio"] = UPLOAD_ERRORS.get(code, f"The last upload failed ({code}).")
    return page(
        "track_edit.html", status, headers=media_page_headers(app.settings),
        title=track.title, viewer=viewer, track=shown, values=values, errors=errors,
        missing=tracks.missing(track), editable=track.status in EDITABLE,
        checking=upload in PENDING, audio_url=audio_url,
        direct=isinstance(app.storages.primary, S3Storage),
        credit_rows=track_forms.credit_rows(values), **context,
    )  # fmt: skip


async def owned(
    request: Request, session: AsyncSession, track_id: uuid.UUID
) -> tuple[Viewer, Track] | None:
    """The viewer and their track (None: not signed in); 404 for a track not theirs."""
    viewer = await optional_viewer(request)
    if viewer is None:
        return None
    return viewer, await tracks.get_own(session, track_id=track_id, owner=viewer.user)


@pages.get("/tracks/{track_id}", response_class=HTMLResponse)
async def track_page(
    track_id: uuid.UUID, request: Request, session: SessionDep, done: str = ""
) -> Response:
    found = await owned(request, session, track_id)
    if found is None:
        return to_sign_in()
    viewer, track = found
    return await edit_page(request, track, viewer=viewer, notice=NOTICES.get(done))


@pages.post("/tracks/{track_id}", response_class=HTMLResponse)
async def save(track_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    found = await owned(request, session, track_id)
    if found is None:
        return to_sign_in()
    viewer, track = found
    await checked_form(request, viewer)
    values = track_forms.posted_values(await request.form())
    data = track_forms.update_data(values)
    try:
        body = TrackUpdate.model_validate(track_forms.without_rows(data))
    except ValidationError as exc:
        errors = track_forms.track_errors(exc, data)
        return await edit_page(
            request, track, viewer=viewer, status=422, values=values, errors=errors
        )
    try:
        await tracks.update(session, track=track, data=body)
    except ProblemError as exc:
        await session.rollback()  # nothing of the refused change is kept
        async with request.app.state.sessionmaker() as fresh:
            track = await tracks.get_own(fresh, track_id=track_id, owner=viewer.user)
            return await edit_page(
                request, track, viewer=viewer, status=exc.status, values=values, error=exc.detail
            )
    return RedirectResponse(f"/tracks/{track_id}?done=saved", status_code=303)
