"""Second-factor endpoints: the sign-in's second step, and managing one's own factors.

`/api/auth/mfa/*` is public: the challenge token from the password step is the credential.
`/api/me/factors/*` is for a signed-in person; each change checks the password or a code
again (wrong ones count toward the same lockout as sign-in) and is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import auth
from backline.accounts.deps import CurrentUser
from backline.accounts.models import User
from backline.accounts.routes import session_response
from backline.accounts.schemas import TokenResponse
from backline.apidoc.declare import raises
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import Conflict, problem_response
from backline.factors import challenge, gate, service  # noqa: F401 - gate registers itself
from backline.factors.challenge import Proof, Purpose, Refused, Wrong
from backline.factors.schemas import (
    ChallengeRequest,
    CodeRequest,
    DisableRequest,
    EnrolConfirmRequest,
    EnrolledSession,
    FactorsState,
    PasswordReauth,
    PasswordRequest,
    ReauthRequest,
    RecoveryCodes,
    RecoveryCodesState,
    TotpEnrolment,
    TotpState,
    VerifyRequest,
    VerifyWithCode,
)
from backline.ratelimit.deps import RateLimit
from backline.routing import router

second_step = router(public=True, prefix="/api/auth/mfa", tags=["auth"])
mine = router(prefix="/api/me/factors", tags=["second factors"])

CHALLENGE_PROBLEMS = (
    (401, "invalid_challenge"),
    (401, "challenge_expired"),
    (401, "challenge_used"),
    (401, "challenge_exhausted"),
)
CODE_PROBLEMS = ((401, "invalid_mfa_code"), (401, "mfa_code_reused"), (429, "account_locked"))


def answer_failure(failure: auth.AuthFailure) -> Response:
    """A refused step as its problem, with `Retry-After` when it is a pause."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    return problem_response(failure.status, failure.code, failure.detail, headers=headers)


@second_step.post(
    "/verify",
    response_model=TokenResponse,
    dependencies=[RateLimit("mfa_verify")],
    summary="The second step of sign-in: the challenge and a code open the session",
)
@raises(
    *CHALLENGE_PROBLEMS,
    *CODE_PROBLEMS,
    (401, "invalid_recovery_code"),
    (401, "recovery_code_used"),
    (503, "busy"),
)
async def verify(
    body: VerifyRequest, request: Request, response: Response, settings: SettingsDep
) -> Any:
    client = client_info(request)

    async def check(session: AsyncSession, user: User) -> Proof | Wrong:
        if isinstance(body, VerifyWithCode):
            return await service.check_totp(session, settings=settings, user=user, code=body.code)
        return await service.use_recovery_code(
            session, settings=settings, user=user, code=body.recovery_code, client=client
        )

    outcome = await challenge.redeem(
        request, token=body.challenge_token, purpose=Purpose.SIGN_IN, check=check
    )
    if isinstance(outcome, auth.AuthFailure):
        return answer_failure(outcome)
    return session_response(outcome.pair, mode=body.mode, response=response, settings=settings)


@second_step.post(
    "/enrol/totp",
    dependencies=[RateLimit("mfa_verify")],
    summary="Enrol an authenticator app during sign-in, when the account's role needs one",
)
@raises(*CHALLENGE_PROBLEMS, (409, "totp_already_enabled"))
async def enrol_during_sign_in(
    body: ChallengeRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> Any:
    try:
        claims = challenge.read(settings.signing_key, body.challenge_token, purpose=Purpose.ENROL)
        await challenge.alive(session, claims)
    except Refused as refusal:
        return answer_failure(await challenge.refused(request, refusal, session=session))
    user = await session.get(User, claims.user_id)
    if user is None:
        return answer_failure(Refused("invalid_challenge", "Sign in again.").failure())
    enrolment = await service.start_totp(
        session, settings=settings, user=user, client=client_info(request)
    )
    return TotpEnrolment(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
    )


@second_step.post(
    "/enrol/totp/confirm",
    response_model=EnrolledSession,
    dependencies=[RateLimit("mfa_verify")],
    summary="Confirm the authenticator app enrolled during sign-in: the session opens",
)
@raises(*CHALLENGE_PROBLEMS, *CODE_PROBLEMS, (409, "no_totp_enrolment"), (503, "busy"))
async def confirm_during_sign_in(
    body: EnrolConfirmRequest, request: Request, response: Response, settings: SettingsDep
) -> Any:
    client = client_info(request)

    async def check(session: AsyncSession, user: User) -> Proof | Wrong:
        return await service.confirm_totp(
            session, settings=settings, user=user, code=body.code, client=client
        )

    outcome = await challenge.redeem(
        request, token=body.challenge_token, purpose=Purpose.ENROL, check=check
    )
    if isinstance(outcome, auth.AuthFailure):
        return answer_failure(outcome)
    tokens = session_response(outcome.pair, mode=body.mode, response=response, settings=settings)
    return EnrolledSession(
        **tokens.model_dump(), recovery_codes=outcome.proof.extra["recovery_codes"]
    )


# ----------------------------------------------------------------------------- signed in


@mine.get("", summary="The account's second factors")
async def factors(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> FactorsState:
    found = await service.state(session, settings=settings, user=user)
    return FactorsState(
        totp=TotpState(
            enabled=found.totp_enabled,
            pending=found.totp_pending,
            created_at=found.totp_created_at,
            last_used_at=found.totp_last_used_at,
        ),
        recovery_codes=RecoveryCodesState(
            remaining=found.recovery_codes_left,
            created_at=found.recovery_codes_created_at,
            last_used_at=found.recovery_codes_last_used_at,
        ),
        required=found.required,
        required_met=found.required_met,
        methods=list(found.methods),
    )


@mine.post(
    "/totp",
    status_code=status.HTTP_201_CREATED,
    response_model=TotpEnrolment,
    dependencies=[RateLimit("mfa_manage")],
    summary="Start enrolling an authenticator app (confirm it with a code)",
)
@raises((403, "invalid_credentials"), (429, "account_locked"), (409, "totp_already_enabled"))
async def start_totp(
    body: PasswordRequest,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    client = client_info(request)
    failure = await service.prove(
        session, settings=settings, user=user, client=client, password=body.password, code=None
    )
    if failure is not None:
        return answer_failure(failure)
    enrolment = await service.start_totp(session, settings=settings, user=user, client=client)
    return TotpEnrolment(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
    )


@mine.post(
    "/totp/confirm",
    response_model=RecoveryCodes,
    dependencies=[RateLimit("mfa_manage")],
    summary="Confirm the authenticator app with a code from it; answers the recovery codes",
)
@raises((422, "invalid_mfa_code"), (409, "no_totp_enrolment"))
async def confirm_totp(
    body: CodeRequest,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    verdict = await service.confirm_totp(
        session, settings=settings, user=user, code=body.code, client=client_info(request)
    )
    if isinstance(verdict, Wrong):
        return problem_response(422, verdict.code, verdict.detail)
    return RecoveryCodes(recovery_codes=verdict.extra["recovery_codes"])


@mine.delete(
    "/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    dependencies=[RateLimit("mfa_manage")],
    summary="Remove the authenticator app (and the recovery codes): password and a code",
)
@raises(
    (403, "invalid_credentials"),
    (403, "invalid_mfa_code"),
    (403, "mfa_code_reused"),
    (403, "invalid_recovery_code"),
    (403, "recovery_code_used"),
    (429, "account_locked"),
    (409, "no_factor"),
    (409, "factor_required"),
)
async def disable_totp(
    body: DisableRequest,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    client = client_info(request)
    await service.removable(session, settings=settings, user=user)
    failure = await service.prove(
        session, settings=settings, user=user, client=client, password=body.password,
        code=body.code,
    )  # fmt: skip
    if failure is not None:
        return answer_failure(failure)
    await service.disable_totp(session, settings=settings, user=user, client=client)
    return None


@mine.post(
    "/recovery-codes",
    response_model=RecoveryCodes,
    dependencies=[RateLimit("mfa_manage")],
    summary="Replace the recovery codes: the password or a code; answers the new ones",
)
@raises(
    (403, "invalid_credentials"),
    (403, "invalid_mfa_code"),
    (403, "mfa_code_reused"),
    (403, "invalid_recovery_code"),
    (403, "recovery_code_used"),
    (429, "account_locked"),
    (409, "no_factor"),
)
async def regenerate(
    body: ReauthRequest,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    client = client_info(request)
    found = await service.totp_of(session, user_id=user.id)
    if found is None or found.confirmed_at is None:
        raise Conflict("Set up an authenticator app first.", code="no_factor")
    password = body.password if isinstance(body, PasswordReauth) else None
    failure = await service.prove(
        session, settings=settings, user=user, client=client, password=password, code=body.code
    )
    if failure is not None:
        return answer_failure(failure)
    codes = await service.regenerate_recovery_codes(
        session, settings=settings, user=user, client=client
    )
    return RecoveryCodes(recovery_codes=codes)
