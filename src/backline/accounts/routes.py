"""Account endpoints: `/api/auth/*` (signing up, in and out) and `/api/me` (the account).

Routes stay thin: they pick the inputs, call `signin`, `recovery`, `auth` or `service`, and
shape the answer. A failure the service returns rather than raises (see `auth`) is answered as
a problem after the transaction is committed, so what it recorded stays recorded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import BackgroundTasks, Body, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from backline import pagination
from backline.accounts import auth, closing, recovery
from backline.accounts import service as accounts
from backline.accounts import sessions as open_sessions
from backline.accounts.cookies import clear_session_cookies, set_session_cookies
from backline.accounts.deps import (
    REFRESH_COOKIE,
    CurrentPrincipal,
    CurrentUser,
    CurrentUserId,
    RequireRole,
    check_csrf,
)
from backline.accounts.login import log_in
from backline.accounts.models import Role, User
from backline.accounts.names import check_display_name
from backline.accounts.revocation import Revocations
from backline.accounts.schemas import (
    Accepted,
    ChangePasswordRequest,
    DeleteAccountRequest,
    EmailRequest,
    LoginRequest,
    MfaChallengeResponse,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    SessionPage,
    SessionPublic,
    TokenRequest,
    TokenResponse,
    UserPublic,
    UserUpdate,
)
from backline.accounts.second_step import Challenge
from backline.accounts.tokens import csrf_token
from backline.apidoc.declare import raises
from backline.audit import service as audit
from backline.config import Settings
from backline.context import client_info
from backline.deps import (
    EnginesDep,
    HttpClientDep,
    SessionDep,
    SettingsDep,
    StoragesDep,
)
from backline.errors import Conflict, Forbidden, NotFound, Unauthorized, problem_response
from backline.ratelimit.deps import RateLimit, charge
from backline.routing import router

public = router(public=True, prefix="/api/auth", tags=["auth"])
signed_in = router(prefix="/api/auth", tags=["auth"])
me = router(prefix="/api/me", tags=["account"])
admin = router(prefix="/api/admin", tags=["admin"])

ACCEPTED = "If the address can receive email, a message is on its way."


def answer_no_sooner_than(seconds: float) -> Any:
    """A route dependency holding the response until `seconds` after the request began.

    Declared on the route, it is entered before the session and left after the commit, so it
    covers all the work: whether an address has an account then shows neither in the answer
    nor in its timing.
    """

    async def floor() -> AsyncIterator[None]:
        began = time.monotonic()
        yield
        remaining = seconds - (time.monotonic() - began)
        if remaining > 0:
            await asyncio.sleep(remaining)

    return Depends(floor, scope="function")


EQUAL_TIME = answer_no_sooner_than(0.25)


def _revocations(request: Request) -> Revocations:
    revocations: Revocations = request.app.state.revocations
    return revocations


def _failure(failure: auth.AuthFailure) -> JSONResponse:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    return problem_response(failure.status, failure.code, failure.detail, headers=headers)


def session_response(
    pair: auth.TokenPair, *, mode: str, response: Response, settings: Settings
) -> TokenResponse:
    """A new session as the answer: the tokens, or (mode `cookie`) the cookies that hold them."""
    if mode == "cookie":
        csrf = csrf_token(settings.signing_key, pair.session_id)
        set_session_cookies(
            response,
            settings=settings,
            access=pair.access_token,
            refresh=pair.refresh_token,
            csrf=csrf,
        )
        return TokenResponse(
            access_token=None, expires_in=pair.expires_in, refresh_token=None, csrf_token=csrf
        )
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


def _public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        email_verified=user.is_verified,
        created_at=user.created_at,
    )


@public.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[EQUAL_TIME, RateLimit("register")],
    summary="Sign up; the answer is the same whether or not the address is taken",
)
@raises(
    (422, "invalid_email"), (422, "weak_password"), (422, "invalid_display_name"), (503, "busy")
)
async def register(
    body: RegisterRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> Accepted:
    try:
        await recovery.register(
            session,
            settings=settings,
            http=http,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            client=client_info(request),
        )
    except Conflict:
        # A concurrent sign-up with the same address won the race: the same answer.
        await session.rollback()
    return Accepted(detail="Check your inbox for a link to confirm your address.")


@public.post("/verify-email", summary="Confirm an address with the token from the email")
@raises((400, "invalid_token"), (409, "email_taken"))
async def verify_email(body: TokenRequest, request: Request, session: SessionDep) -> UserPublic:
    user = await recovery.verify_email(session, token=body.token, client=client_info(request))
    return _public(user)


@public.post(
    "/resend-verification",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[EQUAL_TIME, RateLimit("resend_verification")],
)
@raises((422, "invalid_email"))
async def resend_verification(
    body: EmailRequest, session: SessionDep, settings: SettingsDep
) -> Accepted:
    await recovery.resend_verification(session, settings=settings, email=body.email)
    return Accepted(detail=ACCEPTED)


@public.post(
    "/login",
    response_model=TokenResponse | MfaChallengeResponse,
    dependencies=[RateLimit("login"), RateLimit("login_account")],
    summary="Sign in: a session, or (with a second factor) a challenge for the second step",
)
@raises(
    (401, "invalid_credentials"),
    (403, "email_not_verified"),
    (429, "account_locked"),
    (503, "busy"),
)
async def login(
    body: LoginRequest, request: Request, response: Response, settings: SettingsDep
) -> Any:
    outcome = await log_in(request, email=body.email, password=body.password)
    if isinstance(outcome, auth.AuthFailure):
        return _failure(outcome)
    if isinstance(outcome, Challenge):
        return challenge_response(outcome)
    return session_response(outcome, mode=body.mode, response=response, settings=settings)


def challenge_response(challenge: Challenge) -> MfaChallengeResponse:
    return MfaChallengeResponse(
        challenge_token=challenge.token,
        methods=list(challenge.methods),
        expires_in=challenge.expires_in,
        enrolment_required=challenge.enrolment_required,
    )


@public.post(
    "/refresh",
    response_model=TokenResponse,
    dependencies=[RateLimit("refresh")],
)
@raises((401, "invalid_refresh_token"), (401, "refresh_token_reused"), (403, "csrf_failed"))
async def refresh(
    request: Request,
    response: Response,
    settings: SettingsDep,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> Any:
    body = body or RefreshRequest()
    token, mode = body.refresh_token, body.mode
    if token is None:
        token, mode = request.cookies.get(REFRESH_COOKIE), "cookie"
        if token is None:
            raise Unauthorized("No refresh token was sent.", code="invalid_refresh_token")
    sessionmaker = request.app.state.sessionmaker
    # The rotation is its own short transaction, under a lock, so that two concurrent
    # refreshes of one token see each other (see `auth.rotation_lock`).
    async with auth.rotation_lock(token), sessionmaker() as session, session.begin():
        if body.refresh_token is None:
            # The browser sends the cookie on its own: the page must prove it asked.
            session_id = await auth.session_of_refresh(session, token=token)
            if session_id is not None:
                check_csrf(request, session_id)
        outcome = await auth.refresh(
            session,
            settings=settings,
            revocations=_revocations(request),
            token=token,
            client=client_info(request),
        )
    if isinstance(outcome, auth.AuthFailure):
        failed = _failure(outcome)
        if mode == "cookie":
            clear_session_cookies(failed, settings=settings)
        return failed
    return session_response(outcome, mode=mode, response=response, settings=settings)


@public.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[EQUAL_TIME, RateLimit("forgot_password")],
)
@raises((422, "invalid_email"))
async def forgot_password(
    body: EmailRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> Accepted:
    await recovery.forgot_password(
        session, settings=settings, email=body.email, client=client_info(request)
    )
    return Accepted(detail=ACCEPTED)


@public.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[RateLimit("reset_password")],
)
@raises((400, "invalid_token"), (422, "weak_password"), (503, "busy"))
async def reset_password(
    body: ResetPasswordRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> None:
    await recovery.reset_password(
        session,
        settings=settings,
        http=http,
        revocations=_revocations(request),
        token=body.token,
        new_password=body.new_password,
        client=client_info(request),
    )


@signed_in.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    principal: CurrentPrincipal,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> None:
    await auth.end_sessions(
        session,
        revocations=_revocations(request),
        user_id=principal.user.id,
        reason="logout",
        only=principal.session_id,
    )
    client = client_info(request)
    await audit.record(
        session,
        event="logout",
        user_id=principal.user.id,
        client=client,
        session_id=str(principal.session_id),
    )
    clear_session_cookies(response, settings=settings)


@signed_in.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(
    principal: CurrentPrincipal,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> None:
    ended = await auth.end_sessions(
        session, revocations=_revocations(request), user_id=principal.user.id, reason="logout_all"
    )
    client = client_info(request)
    await audit.record(
        session,
        event="logout_all",
        user_id=principal.user.id,
        client=client,
        sessions_ended=ended,
    )
    clear_session_cookies(response, settings=settings)


@signed_in.get("/sessions")
@raises(pagination.INVALID_CURSOR)
async def sessions(
    principal: CurrentPrincipal,
    session: SessionDep,
    cursor: pagination.CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> SessionPage:
    rows = await open_sessions.page(
        session,
        user_id=principal.user.id,
        before=pagination.decode(cursor) if cursor else None,
        limit=limit + 1,
    )
    items = [
        SessionPublic.model_validate(row).model_copy(
            update={"current": row.id == principal.session_id}
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    last = items[-1] if more and items else None
    return SessionPage(
        items=items, next_cursor=pagination.encode(last.created_at, last.id) if last else None
    )


@signed_in.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
@raises(NotFound)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, request: Request, session: SessionDep
) -> None:
    ended = await auth.end_sessions(
        session,
        revocations=_revocations(request),
        user_id=principal.user.id,
        reason="revoked",
        only=session_id,
    )
    if not ended:
        raise NotFound("No such session.")
    client = client_info(request)
    await audit.record(
        session,
        event="session_revoked",
        user_id=principal.user.id,
        client=client,
        session_id=str(session_id),
    )


@signed_in.post("/change-password")
@raises(
    (403, "invalid_credentials"), (429, "account_locked"), (422, "weak_password"), (503, "busy")
)
async def change_password(
    body: ChangePasswordRequest,
    principal: CurrentPrincipal,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpClientDep,
) -> Any:
    client = client_info(request)
    failure = await auth.check_password_again(
        session,
        settings=settings,
        user=principal.user,
        password=body.current_password,
        client=client,
    )
    if failure is not None:
        return _failure(failure)
    ended = await recovery.change_password(
        session,
        settings=settings,
        http=http,
        revocations=_revocations(request),
        user=principal.user,
        current_session=principal.session_id,
        new_password=body.new_password,
        client=client,
    )
    return {"other_sessions_ended": ended}


@me.get("")
async def get_me(user_id: CurrentUserId, engines: EnginesDep) -> UserPublic:
    # The page every signed-in client asks first: one read on a bare autocommit connection.
    public = await accounts.get_public(engines.autocommit, user_id=user_id)
    if public is None:
        raise Unauthorized("This account no longer exists.", code="invalid_token")
    return public


@me.patch("", response_model=UserPublic)
@raises(
    (403, "password_required"),
    (403, "invalid_credentials"),
    (429, "account_locked"),
    (429, "rate_limited"),
    (422, "invalid_display_name"),
    (422, "invalid_email"),
    (409, "email_taken"),
    (503, "busy"),
    (503, "rate_limit_unavailable"),
)
async def update_me(
    body: UserUpdate,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    # The name is checked before anything is done, so a bad one leaves no mail queued.
    name = None if body.display_name is None else check_display_name(body.display_name)
    if body.email is not None:
        if body.current_password is None:
            raise Forbidden(
                "Changing the email address needs the current password.",
                code="password_required",
            )
        # Each change mails the new address and the old one: counted per account and per
        # new address, so that nobody can fill an inbox with confirmation requests.
        await charge(request, "email_change")
        client = client_info(request)
        failure = await auth.check_password_again(
            session, settings=settings, user=user, password=body.current_password, client=client
        )
        if failure is not None:
            return _failure(failure)
        await recovery.request_email_change(
            session, settings=settings, user=user, new_email=body.email, client=client
        )
    await accounts.update(session, user=user, display_name=name)
    return _public(user)


@me.delete("", status_code=status.HTTP_204_NO_CONTENT, response_model=None)
@raises((403, "invalid_credentials"), (429, "account_locked"), (503, "busy"))
async def delete_me(
    body: DeleteAccountRequest,
    principal: CurrentPrincipal,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    storages: StoragesDep,
) -> Any:
    user = principal.user
    failure = await auth.check_password_again(
        session, settings=settings, user=user, password=body.password, client=client_info(request)
    )
    if failure is not None:
        return _failure(failure)
    later = await closing.close(
        session,
        revocations=_revocations(request),
        user=user,
        storages=storages,
        client=client_info(request),
    )
    for work in later:
        background.add_task(work)  # after the commit
    clear_session_cookies(response, settings=settings)
    return None


@me.get("/export")
async def export_me(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    return await closing.export_all(session, user=user)


@admin.patch("/users/{user_id}/role", dependencies=[RequireRole("admin")])
@raises(NotFound)
async def change_role(
    user_id: uuid.UUID,
    role: Annotated[Role, Body(embed=True)],
    principal: CurrentPrincipal,
    request: Request,
    session: SessionDep,
) -> UserPublic:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    before, user.role = user.role, role.value
    client = client_info(request)
    await audit.record(
        session,
        event="role_changed",
        user_id=user.id,
        actor_id=principal.user.id,
        client=client,
        before=before,
        after=role.value,
    )
    return _public(user)
