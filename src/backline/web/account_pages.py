"""Portal pages for an account: home, sign up, log in and out, forgotten password, sessions.

Each form posts back to its own page, and calls the same services as `/api/auth/*`; a refusal
is shown beside the field it concerns, with what was typed kept (passwords never are). The forms
that must not tell whether an address has an account answer in the same time as the API's.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backline.accounts import auth, recovery
from backline.accounts.cookies import clear_session_cookies, set_session_cookies
from backline.accounts.login import log_in
from backline.accounts.routes import EQUAL_TIME
from backline.accounts.schemas import SessionPublic
from backline.accounts.second_step import Challenge
from backline.accounts.sessions import page as session_page
from backline.accounts.tokens import csrf_token
from backline.audit import service as audit
from backline.config import Settings
from backline.context import client_info
from backline.deps import HttpClientDep, SessionDep, SettingsDep
from backline.errors import Conflict, ProblemError
from backline.oidc.errors import MESSAGES as OIDC_MESSAGES
from backline.ratelimit.deps import RateLimit
from backline.routing import router
from backline.web.render import page
from backline.web.security_pages import after_password
from backline.web.viewer import checked_form, optional_viewer, public_form, to_sign_in

pages = router(public=True, include_in_schema=False)
# Which field a refusal from the account services is about.
FIELD_OF = {"invalid_email": "email", "invalid_display_name": "display_name"}
FIELD_OF_PASSWORD = {"weak_password": "password"}


@pages.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return page("home.html", title="Music in, money out", viewer=await optional_viewer(request))


@pages.get("/signup", response_class=HTMLResponse)
async def signup_page() -> HTMLResponse:
    return page("signup.html", title="Sign up")


@pages.post(
    "/signup", response_class=HTMLResponse, dependencies=[EQUAL_TIME, RateLimit("register")]
)
async def signup(
    request: Request, session: SessionDep, settings: SettingsDep, http: HttpClientDep
) -> HTMLResponse:
    form = await public_form(request)
    values = {k: form.get(k, "")[:400] for k in ("email", "display_name")}
    try:
        await recovery.register(
            session,
            settings=settings,
            http=http,
            email=values["email"],
            password=form.get("password", "")[:1024],
            display_name=values["display_name"],
            client=client_info(request),
        )
    except Conflict:
        await session.rollback()  # a concurrent sign-up won the race: the same answer
    except ProblemError as exc:
        field = (FIELD_OF | FIELD_OF_PASSWORD).get(exc.code)
        errors = {field: exc.detail} if field else {}
        return page(
            "signup.html", exc.status, title="Sign up", values=values, errors=errors,
            error=None if field else exc.detail,
        )  # fmt: skip
    return page("signup.html", 202, title="Check your inbox", values=values, done=True)


@pages.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    if await optional_viewer(request) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    refused = OIDC_MESSAGES.get(request.query_params.get("error") or "")
    status = 200 if refused is None else 400
    return page(
        "login.html", status, title="Log in", error=refused, oidc_providers=_providers(request)
    )


def _providers(request: Request) -> dict[str, str]:
    """The configured external sign-in providers: name -> what the button says."""
    settings: Settings = request.app.state.settings
    return {name: entry.display_name or name for name, entry in settings.oidc_providers.items()}


@pages.post(
    "/login",
    response_class=HTMLResponse,
    dependencies=[RateLimit("login"), RateLimit("login_account")],
)
async def login(request: Request, settings: SettingsDep) -> Response:
    form = await public_form(request)
    values = {"email": form.get("email", "")[:320]}
    outcome = await log_in(request, email=values["email"], password=form.get("password", "")[:1024])
    if isinstance(outcome, auth.AuthFailure):
        headers = {"Cache-Control": "no-store"}
        if outcome.retry_after:
            headers["Retry-After"] = str(outcome.retry_after)
        return page(
            "login.html", outcome.status, headers=headers, title="Log in", values=values,
            error=outcome.detail, unverified=outcome.code == "email_not_verified",
            oidc_providers=_providers(request),
        )  # fmt: skip
    if isinstance(outcome, Challenge):
        return await after_password(request, outcome)
    done = RedirectResponse("/dashboard", status_code=303)
    set_session_cookies(
        done,
        settings=settings,
        access=outcome.access_token,
        refresh=outcome.refresh_token,
        csrf=csrf_token(settings.signing_key, outcome.session_id),
    )
    return done


@pages.post(
    "/resend-verification",
    response_class=HTMLResponse,
    dependencies=[EQUAL_TIME, RateLimit("resend_verification")],
)
async def resend(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    form = await public_form(request)
    await recovery.resend_verification(
        session, settings=settings, email=form.get("email", "")[:320]
    )
    notice = "If the address has an unconfirmed account, a new link is on its way."
    return page("login.html", 202, title="Log in", notice=notice)


@pages.get("/forgot-password", response_class=HTMLResponse)
async def forgot_page() -> HTMLResponse:
    return page("forgot_password.html", title="Forgot your password?")


@pages.post(
    "/forgot-password",
    response_class=HTMLResponse,
    dependencies=[EQUAL_TIME, RateLimit("forgot_password")],
)
async def forgot(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    form = await public_form(request)
    await recovery.forgot_password(
        session, settings=settings, email=form.get("email", "")[:320], client=client_info(request)
    )
    notice = "If the address has an account, a link to choose a new password is on its way."
    return page("forgot_password.html", 202, title="Check your inbox", notice=notice)


@pages.post("/logout")
async def logout(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await optional_viewer(request)
    done = RedirectResponse("/", status_code=303)
    if found is not None:
        await checked_form(request, found)
        await auth.end_sessions(
            session,
            revocations=request.app.state.revocations,
            user_id=found.user.id,
            reason="logout",
            only=found.session_id,
        )
        await audit.record(
            session, event="logout", user_id=found.user.id, client=client_info(request),
            session_id=str(found.session_id),
        )  # fmt: skip
    clear_session_cookies(done, settings=settings)
    return done


@pages.get("/sessions", response_class=HTMLResponse)
async def sessions_page(request: Request, session: SessionDep) -> Response:
    found = await optional_viewer(request)
    if found is None:
        return to_sign_in()
    rows = await session_page(session, user_id=found.user.id, before=None, limit=100)
    listed = [
        SessionPublic.model_validate(row).model_copy(update={"current": row.id == found.session_id})
        for row in rows
    ]
    return page("sessions.html", title="Your sessions", viewer=found, sessions=listed)


@pages.post("/sessions/{session_id}/revoke")
async def revoke(session_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    found = await optional_viewer(request)
    if found is None:
        return to_sign_in()
    await checked_form(request, found)
    ended = await auth.end_sessions(
        session,
        revocations=request.app.state.revocations,
        user_id=found.user.id,
        reason="revoked",
        only=session_id,
    )
    if ended:
        await audit.record(
            session, event="session_revoked", user_id=found.user.id, client=client_info(request),
            session_id=str(session_id),
        )  # fmt: skip
    return RedirectResponse("/sessions", status_code=303)


@pages.post("/sessions/end-all")
async def end_all(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await optional_viewer(request)
    if found is None:
        return to_sign_in()
    await checked_form(request, found)
    ended = await auth.end_sessions(
        session, revocations=request.app.state.revocations, user_id=found.user.id,
        reason="logout_all",
    )  # fmt: skip
    await audit.record(
        session, event="logout_all", user_id=found.user.id, client=client_info(request),
        sessions_ended=ended,
    )  # fmt: skip
    done = RedirectResponse("/login", status_code=303)
    clear_session_cookies(done, settings=settings)
    return done
