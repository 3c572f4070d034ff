"""The track page's upload forms without JavaScript: a plain `multipart/form-data` post of
the audio or the artwork, streamed through the app by the same code as the API's uploads
(`tracks.upload_routes.receive`), then back to the track's page.

The form's `Origin` is checked before the body is read; its CSRF token, a field of the form,
once the form has streamed in and before anything is stored. A refused upload keeps nothing
and is explained beside its field.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backline.accounts.deps import check_csrf, check_origin
from backline.errors import ProblemError, Unprocessable
from backline.ratelimit.deps import RateLimit
from backline.routing import router
from backline.tracks import service as tracks
from backline.tracks.upload_routes import HARD_CEILING, Receiver, Spooler, form_body, receive
from backline.web.track_edit_pages import edit_page
from backline.web.viewer import Viewer, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)


class NoFile(Unprocessable):
    code = "missing_file"


def _portal_form(request: Request, viewer: Viewer) -> Spooler:
    """A spooler for `receive`: the form's file, once its CSRF token passes."""

    def check(fields: dict[str, str]) -> None:
        check_csrf(request, viewer.session_id, fields.get("csrf_token", ""))

    async def spool(request: Request, **options: Any) -> tuple[Path, Any, str | None]:
        path, hasher, expected = await form_body(request, check, **options)
        if hasher.size == 0:
            await anyio.Path(path).unlink(missing_ok=True)
            raise NoFile("Choose a file to upload.")
        return path, hasher, expected

    return spool


async def _upload(request: Request, track_id: uuid.UUID, kind: str) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    check_origin(request)
    state = request.app.state
    receiver = Receiver(request, viewer.user, state.sessionmaker, state.settings, state.storages)
    try:
        await receive(receiver, track_id=track_id, spooler=_portal_form(request, viewer), kind=kind)
    except ProblemError as exc:
        if exc.code in ("csrf_failed", "not_found"):
            raise
        async with state.sessionmaker() as session:
            track = await tracks.get_own(session, track_id=track_id, owner=viewer.user)
            return await edit_page(
                request, track, viewer=viewer, status=exc.status, errors={kind: exc.detail}
            )
    return RedirectResponse(f"/tracks/{track_id}?done={kind}", status_code=303)


@pages.post(
    "/tracks/{track_id}/audio",
    response_class=HTMLResponse,
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
)
async def upload_audio(track_id: uuid.UUID, request: Request) -> Response:
    return await _upload(request, track_id, "audio")


@pages.post(
    "/tracks/{track_id}/artwork",
    response_class=HTMLResponse,
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
)
async def upload_artwork(track_id: uuid.UUID, request: Request) -> Response:
    return await _upload(request, track_id, "artwork")
