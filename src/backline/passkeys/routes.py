"""Passkey endpoints: an account's own under `/api/me/passkeys`, signing in with one under
`/api/auth/passkeys` (public), and the second step of sign-in with one under
`/api/auth/mfa/passkey` (public: the challenge token from the password step is the credential).

The second step completes the sign-in challenge through `factors.challenge.redeem`, as a code
does: each assertion is a try against the challenge (5 at most), a refused one counts toward
the address's lockout and is audited (`mfa_failed`), and a right one opens the session.

A refused ceremony is answered after the transaction commits, as password sign-in answers a
wrong password: the challenge it spent and its audit event (`passkey_add_failed`,
`passkey_login_failed`, with the refusal's code) stay on record, and nothing else is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import auth, signin
from backline.accounts.deps import CurrentUser
from backline.accounts.models import User
from backline.accounts.revocation import Revocations
from backline.accounts.routes import session_response
from backline.accounts.schemas import TokenResponse
from backline.apidoc.declare import raises
from backline.audit import service as audit
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import NotFound, problem_response
from backline.factors import challenge
from backline.factors.challenge import Proof, Purpose, Wrong
from backline.factors.routes import CHALLENGE_PROBLEMS, answer_failure
from backline.passkeys import factor, service
from backline.passkeys.refusals import ASSERTION, REGISTRATION, SECOND_STEP, Refused, in_second_step
from backline.passkeys.schemas import (
    PasskeyCreate,
    PasskeyList,
    PasskeyPublic,
    PasskeyRename,
    SecondStepOptionsRequest,
    SecondStepRequest,
    SignInOptionsRequest,
    SignInRequest,
)
from backline.ratelimit.deps import RateLimit
from backline.routing import router

me_router = router(prefix="/api/me/passkeys", tags=["passkeys"])
auth_router = router(public=True, prefix="/api/auth/passkeys", tags=["auth"])
mfa_router = router(public=True, prefix="/api/auth/mfa/passkey", tags=["auth"])

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
    row = await service.rename(session, user_id=user.id, passkey_id=passkey_id, name=body.name)
    return PasskeyPublic.model_validate(row)


# `:uuid` paths: `/options` is not a passkey's ID, so its `Allow` names POST alone; another
# path segment is 404 `not_found`.
@me_router.delete("/{passkey_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
@raises((404, "passkey_not_found"), NotFound, (409, "factor_required"))
async def remove_passkey(
    passkey_id: uuid.UUID,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> None:
    await service.remove(
        session, settings=settings, user=user, passkey_id=passkey_id, client=client_info(request)
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
    pair = await signin.open_session(
        await session.connection(),
        settings=settings,
        revocations=revocations,
        user_id=asserted.user.id,
        client=client_info(request),
        method=factor.PASSKEY,
        passkey_id=str(asserted.passkey.id),
    )
    if pair is None:  # the account was removed meanwhile
        gone = Refused(401, "unknown_credential", "This passkey is not registered here.")
        return await _refusal(session, request, gone, event="passkey_login_failed")
    return session_response(pair, mode=body.mode, response=response, settings=settings)


# ----------------------------------------------------------------------------- second step


@mfa_router.post(
    "/options",
    response_class=Response,
    responses=OPTIONS_RESPONSE,
    dependencies=[RateLimit("mfa_passkey")],
    summary="Options for navigator.credentials.get(): the second step of sign-in",
)
@raises(*CHALLENGE_PROBLEMS, (409, "no_passkey"))
async def second_step_options(
    body: SecondStepOptionsRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """The account's passkeys (`allowCredentials`) and a challenge good for this sign-in
    challenge alone. Asking counts no try; the sign-in challenge must still be open."""
    try:
        claims = challenge.read(settings.signing_key, body.challenge_token, purpose=Purpose.SIGN_IN)
        await challenge.alive(session, claims)
    except challenge.Refused as refusal:
        return answer_failure(await challenge.refused(request, refusal, session=session))
    user = await session.get(User, claims.user_id)
    if user is None:
        return answer_failure(challenge.Refused("invalid_challenge", "Sign in again.").failure())
    return _options(
        await service.second_step_options(
            session, settings=settings, user=user, mfa_challenge_id=claims.challenge_id
        )
    )


def _challenge_id(settings: SettingsDep, token: str) -> uuid.UUID | None:
    try:
        return challenge.read(settings.signing_key, token, purpose=Purpose.SIGN_IN).challenge_id
    except challenge.Refused:
        return None  # `redeem` refuses it, and says why


@mfa_router.post(
    "/verify",
    response_model=TokenResponse,
    dependencies=[RateLimit("mfa_verify")],
    summary="The second step of sign-in: the challenge and a passkey's assertion open the session",
)
@raises(*CHALLENGE_PROBLEMS, *SECOND_STEP, (429, "account_locked"), (503, "busy"))
async def second_step_verify(
    body: SecondStepRequest, request: Request, response: Response, settings: SettingsDep
) -> Any:
    bound = _challenge_id(settings, body.challenge_token)

    async def check(session: AsyncSession, user: User) -> Proof | Wrong:
        if bound is None:  # not reached: `redeem` refuses a token that does not read
            return Wrong("invalid_challenge", "Sign in again.")
        try:
            passkey = await service.second_step(
                session,
                settings=settings,
                user=user,
                mfa_challenge_id=bound,
                credential=body.credential,
            )
        except Refused as refused:
            return Wrong(in_second_step(refused.code), refused.detail, refused.status)
        return Proof(factor.PASSKEY, {"passkey_id": str(passkey.id)})

    outcome = await challenge.redeem(
        request, token=body.challenge_token, purpose=Purpose.SIGN_IN, check=check
    )
    if isinstance(outcome, auth.AuthFailure):
        return answer_failure(outcome)
    return session_response(outcome.pair, mode=body.mode, response=response, settings=settings)
