"""Portal page for the account itself: `/account` (change the password or the email address,
export my data, delete the account).

Each form posts to its own path and calls the same services as the JSON API: the current
password is checked again first (`auth.check_password_again`: wrong answers count toward the
same lockout as signing in, and that count is kept), then `recovery.change_password` (every
other session ends), `recovery.request_email_change` (a link to the new address, a note to the
old one), or `closing.close`. The export is the JSON of `GET /api/me/export`, as a download.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import auth, closing, recovery
from backline.accounts.cookies import clear_session_cookies
from backline.accounts.models import User
from backline.config import Settings
from backline.context import client_info
from backline.deps import HttpClientDep, SessionDep, SettingsDep, StoragesDep
from backline.errors import ProblemError
from backline.oidc import service as oidc
from backline.ratelimit.deps import charge
from backline.routing import router
from backline.web.render import page
from backline.web.viewer import Viewer, checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)
MAX_PASSWORD = 1024
ASK_CURRENT = "Enter your current password."


def _account_page(viewer: Viewer, status: int = 200, **context: Any) -> HTMLResponse:
    headers = {"Cache-Control": "no-store"}
    if retry := context.pop("retry_after", None):
        headers["Retry-After"] = str(retry)
    return page(
        "account.html", status, headers=headers, title="Your account", viewer=viewer, **context
    )


async def _signed_in(
    request: Request, session: AsyncSession
) -> tuple[Viewer, User, dict[str, str]] | None:
    """The viewer, their row in this transaction, and the checked form; None when signed out."""
    viewer = await optional_viewer(request)
    if viewer is None:
        return None
    form = await checked_form(request, viewer)
    user = await session.get(User, viewer.user.id)
    return None if user is None else (viewer, user, form)


async def _password_refused(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User,
    password: str,
    field: str,
) -> dict[str, Any] | None:
    """The page context for a refused current password; None when it is right."""
    if not password:
        return {"status": 422, "errors": {field: ASK_CURRENT}}
    failure = await auth.check_password_again(
        session, settings=settings, user=user, password=password, client=client_info(request)
    )
    if failure is None:
        return None
    return {
        "status": failure.status,
        "errors": {field: failure.detail},
        "retry_after": failure.retry_after,
    }


def render_account(viewer: Viewer, status: int = 200, **context: Any) -> HTMLResponse:
    return _account_page(viewer, status, **context)


async def account_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    """The external sign-in part of the page: the providers, the identities linked."""
    settings: Settings = request.app.state.settings
    async with request.app.state.read_sessionmaker() as session:
        linked = await oidc.identities(session, user_id=viewer.user.id)
    return {
        "providers": {
            name: entry.display_name or name for name, entry in settings.oidc_providers.items()
        },
        "identities": linked,
    }


@pages.get("/account", response_class=HTMLResponse)
async def account_page(request: Request) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    context = await account_context(request, viewer)
    if request.query_params.get("linked") == "1":
        context["notice"] = "The identity is linked: you can sign in with it now."
    return _account_page(viewer, **context)


@pages.post("/account/password", response_class=HTMLResponse)
async def change_password(
    request: Request, session: SessionDep, settings: SettingsDep, http: HttpClientDep
) -> Response:
    found = await _signed_in(request, session)
    if found is None:
        return to_sign_in()
    viewer, user, form = found
    new = form.get("new_password", "")[:MAX_PASSWORD]
    if new != form.get("confirm_password", "")[:MAX_PASSWORD]:
        errors = {"confirm_password": "The two new passwords differ."}
        return _account_page(viewer, 422, errors=errors)
    current = form.get("current_password", "")[:MAX_PASSWORD]
    refused = await _password_refused(request, session, settings, user, current, "current_password")
    if refused is not None:
        return _account_page(viewer, refused.pop("status"), **refused)
    try:
        ended = await recovery.change_password(
            session, settings=settings, http=http, revocations=request.app.state.revocations,
            user=user, current_session=viewer.session_id, new_password=new,
            client=client_info(request),
        )  # fmt: skip
    except ProblemError as exc:
        return _account_page(viewer, exc.status, errors={"new_password": exc.detail})
    others = (
        f"{ended} other {'session was' if ended == 1 else 'sessions were'} signed out."
        if ended
        else "No other session was open."
    )
    return _account_page(viewer, notice=f"Your password is changed. {others}")


@pages.post("/account/email", response_class=HTMLResponse)
async def change_email(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await _signed_in(request, session)
    if found is None:
        return to_sign_in()
    viewer, user, form = found
    values = {"email": form.get("email", "").strip()[:320]}
    if len(values["email"]) < 3:
        errors = {"email": "Enter the new email address."}
        return _account_page(viewer, 422, errors=errors, values=values)
    if values["email"].lower() == user.email.lower():
        errors = {"email": "This is already your address."}
        return _account_page(viewer, 422, errors=errors, values=values)
    try:
        # Counted per account and per new address, as the API counts it.
        await charge(request, "email_change")
    except ProblemError as exc:
        return _account_page(
            viewer, exc.status, error=exc.detail, values=values,
            retry_after=(exc.headers or {}).get("Retry-After"),
        )  # fmt: skip
    password = form.get("email_password", "")[:MAX_PASSWORD]
    refused = await _password_refused(request, session, settings, user, password, "email_password")
    if refused is not None:
        return _account_page(viewer, refused.pop("status"), values=values, **refused)
    try:
        await recovery.request_email_change(
            session, settings=settings, user=user, new_email=values["email"],
            client=client_info(request),
        )  # fmt: skip
    except ProblemError as exc:
        await session.rollback()
        return _account_page(viewer, exc.status, errors={"email": exc.detail}, values=values)
    notice = (
        f"A link to confirm {values['email']} is on its way to that address; the change is made "
        f"when you follow it. Your current address has a note about it too."
    )
    return _account_page(viewer, notice=notice)


@pages.get("/account/export")
async def export(request: Request, session: SessionDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    exported = await closing.export_all(session, user=user)
    return Response(
        json.dumps(exported, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="backline-export.json"',
            "Cache-Control": "no-store",
        },
    )


@pages.post("/account/delete", response_class=HTMLResponse)
async def delete(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storages: StoragesDep,
    background: BackgroundTasks,
) -> Response:
    found = await _signed_in(request, session)
    if found is None:
        return to_sign_in()
    viewer, user, form = found
    password = form.get("delete_password", "")[:MAX_PASSWORD]
    refused = await _password_refused(request, session, settings, user, password, "delete_password")
    if refused is not None:
        return _account_page(viewer, refused.pop("status"), **refused)
    later = await closing.close(
        session, revocations=request.app.state.revocations, user=user, storages=storages,
        client=client_info(request),
    )  # fmt: skip
    for work in later:
        background.add_task(work)  # after the commit
    done = page("account_closed.html", title="Your account is deleted")
    clear_session_cookies(done, settings=settings)
    return done
