"""Passkey endpoints: an account's own under `/api/me/passkeys`, and signing in with one under
`/api/auth/passkeys` (public).

A refused ceremony is answered after the transaction commits, as password sign-in answers a
wrong password: the challenge it spent and its audit event (`passkey_add_failed`,
`passkey_login_failed`, with the refusal's code) stay on record, and nothing else is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response, status
from fastapi.responses import JSONResponse

from backline.accounts.deps import CurrentUser
from backline.accounts.revocation import Revocations
from backline.accounts.routes import session_response
from backline.accounts.schemas import TokenResponse
from backline.apidoc.declare import raises
from backline.audit import service as audit
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import NotFound, problem_response
from backline.passkeys import service
from backline.passkeys.opening import open_session
from backline.passkeys.refusals import ASSERTION, REGISTRATION, Refused
from backline.passkeys.schemas import (
    PasskeyCreate,
    PasskeyList,
    PasskeyPublic,
    PasskeyRename,
    SignInOptionsRequest,
    SignInRequest,
)
from backline.ratelimit.deps import RateLimit
from backline.routing import router

me_router = router(prefix="/api/me/passkeys", tags=["passkeys"])
auth_router = router(public=True, prefix="/api/auth/passkeys", tags=["auth"])

OPTIONS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "WebAuthn options for the browser, as JSON (base64url binary fields)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _options(text: str) -> Response:
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


async def _refusal(
    session: SessionDep, request: Request, refused: Refused, *, event: str
) -> JSONResponse:
    await audit.record(
        session,
        event=event,
        user_id=refused.user_id,
        client=client_info(request),
        reason=refused.code,
    )
    return problem_response(refused.status, refused.code, refused.detail, headers=refused.headers)


@me_router.get("")
async def list_passkeys(user: CurrentUser, session: SessionDep) -> PasskeyList:
    rows = await service.list_own(session, user_id=user.id)
    return PasskeyList(items=[PasskeyPublic.model_validate(row) for row in rows])


@me_router.post(
    "/options",
    response_class=Response,
    responses=OPTIONS_RESPONSE,
    dependencies=[RateLimit("passkey_register")],
    summary="Options for navigator.credentials.create(): a new passkey for this account",
)
@raises((409, "too_many_passkeys"))
async def registration_options(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    return _options(await service.registration_options(session, settings=settings, user=user))


@me_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PasskeyPublic,
    dependencies=[RateLimit("passkey_register")],
    summary="Register the passkey the browser made from the options",
)
@raises(*REGISTRATION, (422, "invalid_passkey_name"))
async def add_passkey(
    body: PasskeyCreate,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    try:
        row = await service.register(
            session, settings=settings, user=user, name=body.name, credential=body.credential
        )
    except Refused as refused:
        return await _refusal(session, request, refused, event="passkey_add_failed")
    await audit.record(
        session,
        event="passkey_added",
        user_id=user.id,
        client=client_info(request),
        passkey_id=str(row.id),
    )
    return PasskeyPublic.model_validate(row)


@me_router.patch("/{passkey_id:uuid}", response_model=PasskeyPublic)
@raises((404, "passkey_not_found"), NotFound, (422, "invalid_passkey_name"))
async def rename_passkey(
    passkey_id: uuid.UUID, body: PasskeyRename, user: CurrentUser, session: SessionDep
) -> Any:
    name = service.check_name(body.name)
    row = await service.own(session, user_id=user.id, passkey_id=passkey_id)
    row.name = name
    await session.flush()
    return PasskeyPublic.model_validate(row)


# `:uuid` paths: `/options` is not a passkey's ID, so its `Allow` names POST alone; another
# path segment is 404 `not_found`.
@me_router.delete("/{passkey_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
@raises((404, "passkey_not_found"), NotFound)
async def remove_passkey(
    passkey_id: uuid.UUID, user: CurrentUser, request: Request, session: SessionDep
) -> None:
    row = await service.own(session, user_id=user.id, passkey_id=passkey_id)
    await session.delete(row)
    await audit.record(
        session,
        event="passkey_removed",
        user_id=user.id,
        client=client_info(request),
        passkey_id=str(passkey_id),
    )


@auth_router.post(
    "/options",
    response_class=Response,
    responses=OPTIONS_RESPONSE,
    dependencies=[RateLimit("passkey_login")],
    summary="Options for navigator.credentials.get(): sign in with a passkey",
)
async def authentication_options(
    session: SessionDep, settings: SettingsDep, body: SignInOptionsRequest | None = None
) -> Response:
    email = body.email if body is not None else None
    return _options(await service.authentication_options(session, settings=settings, email=email))


@auth_router.post(
    "/verify",
    response_model=TokenResponse,
    dependencies=[RateLimit("passkey_login")],
    summary="Sign in with the passkey assertion the browser made from the options",
)
@raises(*ASSERTION)
async def sign_in(
    body: SignInRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    try:
        asserted = await service.authenticate(
            session, settings=settings, credential=body.credential
        )
    except Refused as refused:
        return await _refusal(session, request, refused, event="passkey_login_failed")
    revocations: Revocations = request.app.state.revocations
    pair = await open_session(
        session,
        settings=settings,
        revocations=revocations,
        user_id=asserted.user.id,
        passkey_id=asserted.passkey.id,
        client=client_info(request),
    )
    return session_response(pair, mode=body.mode, response=response, settings=settings)
