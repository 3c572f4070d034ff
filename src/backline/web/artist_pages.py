"""Portal pages for a signed-in person: the dashboard and the artist application.

The application form is checked by the API's own `ApplicationCreate` and sent through
`artists.service.submit`, so the page and `/api/artist-applications` refuse the same things.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import Role, User
from backline.artists import service as applications
from backline.artists.schemas import ApplicationCreate, ApplicationPublic, Genre
from backline.config import Settings
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import NotFound, ProblemError
from backline.routing import router
from backline.tracks import service as tracks
from backline.web.render import field_errors, page
from backline.web.viewer import checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)
FORM_FIELDS = ("artist_name", "bio", "country", "links")


async def _latest(
    session: AsyncSession, *, user: User, settings: Settings
) -> ApplicationPublic | None:
    try:
        found = await applications.latest(session, user_id=user.id)
    except NotFound:
        return None
    return applications.public(found, settings=settings)


@pages.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    rows, _ = await tracks.list(session, where=tracks.TrackFilter(owner_id=viewer.user.id))
    listed = [
        {"title": row.title, "status": row.status, "missing": tracks.missing(row)}  # type: ignore[arg-type]
        for row in rows
    ]
    return page(
        "dashboard.html", title="Dashboard", viewer=viewer, tracks=listed,
        application=await _latest(session, user=viewer.user, settings=settings),
    )  # fmt: skip


def _apply_page(status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("chosen_genres", [])
    return page("apply.html", status, title="Artist application", genres=list(Genre), **context)


@pages.get("/apply", response_class=HTMLResponse)
async def apply_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    latest = await _latest(session, user=viewer.user, settings=settings)
    open_now = latest is not None and latest.status in ("submitted", "in_review")
    can_apply = viewer.user.role == Role.USER and not open_now
    blocked = "You are already an artist." if viewer.user.role != Role.USER else ""
    return _apply_page(viewer=viewer, application=latest, can_apply=can_apply, blocked=blocked)


@pages.post("/apply", response_class=HTMLResponse)
async def apply(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    form = await checked_form(request, viewer)
    chosen = [g for g in (await request.form()).getlist("genres") if isinstance(g, str)][:50]
    values = {k: form.get(k, "")[:4000] for k in FORM_FIELDS}
    data: dict[str, Any] = {
        "artist_name": values["artist_name"],
        "bio": values["bio"],
        "genres": chosen,
        "country": values["country"].strip() or None,
        "links": [{"url": line.strip()} for line in values["links"].splitlines() if line.strip()],
    }
    again: dict[str, Any] = {"viewer": viewer, "application": None, "can_apply": True}
    again |= {"values": values, "chosen_genres": chosen}
    try:
        body = ApplicationCreate.model_validate(data)
    except ValidationError as exc:
        return _apply_page(422, errors=field_errors(exc), **again)
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    try:
        await applications.submit(
            session, settings=settings, user=user, data=body, client=client_info(request)
        )
    except ProblemError as exc:
        await session.rollback()
        return _apply_page(exc.status, error=exc.detail, **again)
    return RedirectResponse("/apply", status_code=303)
