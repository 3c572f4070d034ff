"""The portal's routes: the static files, and the pages behind the links in Backline's
emails (confirm an address, reset a password); the other pages come from the `*_pages` modules.

Both pages carry their token in the URL, so they are sent with `Referrer-Policy: no-referrer`
(the token never leaks to another site) and `Cache-Control: no-store`. Opening a link changes
nothing: the address is confirmed, or the password set, only by the form the page shows, so a
mail scanner that fetches every link cannot use the token up. The forms post to the same
path and call the same services as the JSON API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response

from backline.accounts import recovery
from backline.context import client_info
from backline.deps import HttpClientDep, SessionDep, SettingsDep
from backline.errors import NotFound, ProblemError
from backline.ratelimit.deps import RateLimit
from backline.routing import router
from backline.web import (
    account_pages,
    artist_pages,
    audit_pages,
    chat_pages,
    oidc_pages,
    passkey_pages,
    security_pages,
    settings_pages,
    staff_pages,
    staff_track_pages,
    tax_pages,
    track_edit_pages,
    track_pages,
    track_upload_pages,
)
from backline.web.render import STATIC_CACHE, TOKEN_PAGE_HEADERS, assets, page

pages = router(public=True, include_in_schema=False)
MAX_TOKEN = 128
for area in (
    account_pages,
    artist_pages,
    track_pages,
    track_edit_pages,
    track_upload_pages,
    staff_pages,
    staff_track_pages,
    audit_pages,
    tax_pages,
    settings_pages,
    security_pages,
    passkey_pages,
    oidc_pages,
    chat_pages,
):
    pages.include_router(area.pages)


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return page(name, status, headers=TOKEN_PAGE_HEADERS, **context)


@pages.get("/static/{name}")
async def static_file(name: str) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise NotFound("No such file.")
    return Response(
        asset.body, media_type=asset.media_type, headers={"Cache-Control": STATIC_CACHE}
    )


@pages.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(token: str = "") -> HTMLResponse:
    if not token or len(token) > MAX_TOKEN:
        return _page(
            "verify_email.html", 400, title="Confirm your email", error="This link is not complete."
        )
    return _page("verify_email.html", title="Confirm your email", token=token)


@pages.post("/verify-email", response_class=HTMLResponse)
async def verify_email_form(
    token: Annotated[str, Form(max_length=MAX_TOKEN)], request: Request, session: SessionDep
) -> HTMLResponse:
    try:
        user = await recovery.verify_email(session, token=token, client=client_info(request))
    except ProblemError as exc:
        return _page("verify_email.html", exc.status, title="Confirm your email", error=exc.detail)
    return _page("verify_email.html", title="Email confirmed", done=True, email=user.email)


@pages.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(token: str = "") -> HTMLResponse:
    usable = token if 0 < len(token) <= MAX_TOKEN else ""
    return _page("reset_password.html", title="Choose a new password", token=usable)


@pages.post(
    "/reset-password", response_class=HTMLResponse, dependencies=[RateLimit("reset_password")]
)
async def reset_password_form(
    token: Annotated[str, Form(max_length=MAX_TOKEN)],
    new_password: Annotated[str, Form(max_length=1024)],
    confirm_password: Annotated[str, Form(max_length=1024)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> HTMLResponse:
    title = "Choose a new password"
    if new_password != confirm_password:
        return _page(
            "reset_password.html", 422, title=title, token=token,
            errors={"confirm_password": "The two passwords differ."},
        )  # fmt: skip
    try:
        await recovery.reset_password(
            session,
            settings=settings,
            http=http,
            revocations=request.app.state.revocations,
            token=token,
            new_password=new_password,
            client=client_info(request),
        )
    except ProblemError as exc:
        keep = token if exc.code != "invalid_token" else ""
        if exc.code == "weak_password":
            errors = {"new_password": exc.detail}
            return _page("reset_password.html", exc.status, title=title, token=keep, errors=errors)
        return _page("reset_password.html", exc.status, title=title, token=keep, error=exc.detail)
    return _page("reset_password.html", title="Password changed", done=True)
