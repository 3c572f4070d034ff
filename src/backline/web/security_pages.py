"""Portal pages for second factors: the security page (`/account/security`) and the second
step of logging in.

The security page sets up an authenticator app (its QR code, and the secret as text for typing
by hand), confirms it with a code, shows the recovery codes once, makes new ones, and removes
the app (for a role that needs a second factor, only while a passkey stays: else 409
`factor_required`, shown on the page). Each form calls the same services as
`/api/me/factors/*`, with the same re-checks. Whether the role's need is met is the factors'
state (`required_met`: an app or a passkey). The page also lists the account's passkeys, whose
forms are in `passkey_pages`.

Logging in: when the password step answers a challenge, `/login` shows the second step, the
challenge token in a hidden field, offering the methods the account holds: its forms post to
`/login/verify` (a code, or a recovery code), and `static/passkeys.js` completes it with a
passkey through `/api/auth/mfa/passkey/*` (`"mode": "cookie"`), then goes to `/dashboard`.
When the account's role needs a second factor it lacks, `/login` shows the enrolment
instead (the QR code, the secret, a code field), posting to `/login/enrol`; the session opens
with the recovery codes page, shown once. These pages are sent `no-store` and
`Referrer-Policy: same-origin`: the challenge token is in a form field, never in a URL, and
with `no-referrer` a browser posts their forms with `Origin: null`, which the origin check
refuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import auth
from backline.accounts.cookies import set_session_cookies
from backline.accounts.models import User
from backline.accounts.second_step import Challenge
from backline.accounts.tokens import csrf_token
from backline.config import Settings
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import ProblemError
from backline.factors import challenge, service
from backline.factors.challenge import Proof, Purpose, Refused, Wrong
from backline.passkeys import service as passkeys
from backline.ratelimit.deps import RateLimit, charge
from backline.routing import router
from backline.web.render import page
from backline.web.viewer import Viewer, checked_form, optional_viewer, public_form, to_sign_in

pages = router(public=True, include_in_schema=False)
MAX_PASSWORD = 1024
MAX_CODE = 64
MAX_TOKEN = 2048
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}
TITLE = "Security"
PASSKEY_ADDED = "Your passkey is added: use it on the log-in page."
STEP_TITLE = "Second step"
ENROL_TITLE = "Set up an authenticator app"


# ----------------------------------------------------------------------------- logging in


def _headers(failure: auth.AuthFailure | None = None) -> dict[str, str]:
    headers = dict(HEADERS)
    if failure is not None and failure.retry_after:
        headers["Retry-After"] = str(failure.retry_after)
    return headers


def _step_page(
    token: str, methods: tuple[str, ...], status: int = 200, **context: Any
) -> HTMLResponse:
    """The second step, offering the `methods` the account holds (a code, a recovery code, a
    passkey through `static/passkeys.js`)."""
    return page(
        "login_second_step.html", status, headers=_headers(context.pop("failure", None)),
        title=STEP_TITLE, challenge_token=token, methods=methods, **context,
    )  # fmt: skip


async def _methods_of(request: Request, token: str) -> tuple[str, ...]:
    """The methods the challenge's account holds, to show its second step again; none when the
    token does not read (the page then offers the codes, and their check says why)."""
    settings: Settings = request.app.state.settings
    try:
        claims = challenge.read(settings.signing_key, token, purpose=Purpose.SIGN_IN)
    except Refused:
        return ()
    async with request.app.state.read_sessionmaker() as session:
        return (await service.holding(session, user_id=claims.user_id)).methods


async def _enrol_page(
    request: Request, token: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """The enrolment during sign-in, with the pending secret (started here when none is)."""
    settings: Settings = request.app.state.settings
    failure = context.pop("failure", None)
    try:
        claims = challenge.read(settings.signing_key, token, purpose=Purpose.ENROL)
        async with request.app.state.sessionmaker() as session, session.begin():
            await challenge.alive(session, claims)
            user = await session.get(User, claims.user_id)
            if user is None:
                raise Refused("invalid_challenge", "Sign in again.")
            enrolment = await service.pending_enrolment(session, settings=settings, user=user)
            if enrolment is None:
                enrolment = await service.start_totp(
                    session, settings=settings, user=user, client=client_info(request)
                )
    except Refused as refusal:
        await challenge.refused(request, refusal)
        return _over(refusal.detail)
    except ProblemError as exc:  # enrolled meanwhile, in another tab
        return _over(exc.detail)
    return page(
        "login_enrol.html", status, headers=_headers(failure), title=ENROL_TITLE,
        challenge_token=token, enrolment=enrolment, **context,
    )  # fmt: skip


def _over(detail: str) -> HTMLResponse:
    """A challenge that can no longer be completed: back to the password."""
    return page("login.html", 401, headers=_headers(), title="Log in", error=detail)


async def after_password(request: Request, found: Challenge) -> HTMLResponse:
    """What `/login` shows for a right password that needs a second step."""
    if found.enrolment_required:
        return await _enrol_page(request, found.token)
    return _step_page(found.token, found.methods)


def _signed_in(response: Response, settings: Settings, pair: auth.TokenPair) -> Response:
    set_session_cookies(
        response, settings=settings, access=pair.access_token, refresh=pair.refresh_token,
        csrf=csrf_token(settings.signing_key, pair.session_id),
    )  # fmt: skip
    return response


@pages.post("/login/verify", response_class=HTMLResponse, dependencies=[RateLimit("mfa_verify")])
async def verify(request: Request, settings: SettingsDep) -> Response:
    form = await public_form(request)
    token = form.get("challenge_token", "")[:MAX_TOKEN]
    code = form.get("code", "").strip()[:MAX_CODE]
    backup = form.get("recovery_code", "").strip()[:MAX_CODE]
    field = "code" if code or not backup else "recovery_code"
    if not code and not backup:
        errors = {"code": "Enter the code from your app."}
        return _step_page(token, await _methods_of(request, token), 422, errors=errors)
    client = client_info(request)

    async def check(session: AsyncSession, user: User) -> Proof | Wrong:
        if code:
            return await service.check_totp(session, settings=settings, user=user, code=code)
        return await service.use_recovery_code(
            session, settings=settings, user=user, code=backup, client=client
        )

    outcome = await challenge.redeem(request, token=token, purpose=Purpose.SIGN_IN, check=check)
    if isinstance(outcome, auth.AuthFailure):
        if outcome.code.startswith("challenge_") or outcome.code == "invalid_challenge":
            return _over(outcome.detail)
        return _step_page(
            token, await _methods_of(request, token), outcome.status,
            errors={field: outcome.detail}, failure=outcome,
            open_recovery=field == "recovery_code",
        )  # fmt: skip
    return _signed_in(RedirectResponse("/dashboard", status_code=303), settings, outcome.pair)


@pages.post("/login/enrol", response_class=HTMLResponse, dependencies=[RateLimit("mfa_verify")])
async def enrol(request: Request, settings: SettingsDep) -> Response:
    form = await public_form(request)
    token = form.get("challenge_token", "")[:MAX_TOKEN]
    code = form.get("code", "").strip()[:MAX_CODE]
    if not code:
        return await _enrol_page(request, token, 422, errors={"code": "Enter the code."})
    client = client_info(request)

    async def check(session: AsyncSession, user: User) -> Proof | Wrong:
        return await service.confirm_totp(
            session, settings=settings, user=user, code=code, client=client
        )

    try:
        outcome = await challenge.redeem(request, token=token, purpose=Purpose.ENROL, check=check)
    except ProblemError as exc:
        return _over(exc.detail)
    if isinstance(outcome, auth.AuthFailure):
        if outcome.code.startswith("challenge_") or outcome.code == "invalid_challenge":
            return _over(outcome.detail)
        return await _enrol_page(
            request, token, outcome.status, errors={"code": outcome.detail}, failure=outcome
        )
    shown = page(
        "recovery_codes.html", headers=_headers(), title="Your recovery codes",
        codes=outcome.proof.extra["recovery_codes"], next_url="/dashboard",
    )  # fmt: skip
    _signed_in(shown, settings, outcome.pair)
    return shown


# ----------------------------------------------------------------------------- security page


async def security_view(
    session: AsyncSession, settings: Settings, viewer: Viewer, status: int = 200, **context: Any
) -> HTMLResponse:
    user = await session.get(User, viewer.user.id) or viewer.user
    state = await service.state(session, settings=settings, user=user)
    held = await passkeys.list_own(session, user_id=user.id)
    headers = dict(HEADERS)
    if retry := context.pop("retry_after", None):
        headers["Retry-After"] = str(retry)
    return page(
        "security.html", status, headers=headers, title=TITLE, viewer=viewer, state=state,
        passkeys=held, **context,
    )  # fmt: skip


async def signed_in_form(request: Request) -> tuple[Viewer, dict[str, str]] | None:
    viewer = await optional_viewer(request)
    if viewer is None:
        return None
    return viewer, await checked_form(request, viewer)


def _refused(failure: auth.AuthFailure, field: str) -> dict[str, Any]:
    return {"errors": {field: failure.detail}, "retry_after": failure.retry_after}


async def managing(
    request: Request, session: AsyncSession, settings: Settings
) -> tuple[Viewer, dict[str, str]] | Response:
    """A form posted on the security page by a signed-in viewer, within `mfa_manage`: the
    viewer and the form, or the answer to give instead (to sign in, or the page saying the
    limit's refusal)."""
    found = await signed_in_form(request)
    if found is None:
        return to_sign_in()
    try:
        await charge(request, "mfa_manage")
    except ProblemError as exc:
        return await security_view(session, settings, found[0], exc.status, error=exc.detail)
    return found


@pages.get("/account/security", response_class=HTMLResponse)
async def security_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    notice = PASSKEY_ADDED if request.query_params.get("passkey") == "added" else None
    return await security_view(session, settings, viewer, notice=notice)


@pages.post("/account/security/totp", response_class=HTMLResponse)
async def start(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await managing(request, session, settings)
    if isinstance(found, Response):
        return found
    viewer, form = found
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    password = form.get("password", "")[:MAX_PASSWORD]
    if not password:
        errors = {"password": "Enter your password."}
        return await security_view(session, settings, viewer, 422, errors=errors)
    client = client_info(request)
    failure = await service.prove(
        session, settings=settings, user=user, client=client, password=password, code=None
    )
    if failure is not None:
        return await security_view(
            session, settings, viewer, failure.status, **_refused(failure, "password")
        )
    try:
        enrolment = await service.start_totp(session, settings=settings, user=user, client=client)
    except ProblemError as exc:
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    return await security_view(session, settings, viewer, enrolment=enrolment)


@pages.post("/account/security/totp/confirm", response_class=HTMLResponse)
async def confirm(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await managing(request, session, settings)
    if isinstance(found, Response):
        return found
    viewer, form = found
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    code = form.get("code", "").strip()[:MAX_CODE]
    try:
        verdict: Proof | Wrong = (
            await service.confirm_totp(
                session, settings=settings, user=user, code=code, client=client_info(request)
            )
            if code
            else Wrong("invalid_mfa_code", "Enter the code from your app.")
        )
    except ProblemError as exc:
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    if isinstance(verdict, Wrong):
        enrolment = await service.pending_enrolment(session, settings=settings, user=user)
        return await security_view(
            session, settings, viewer, 422, errors={"code": verdict.detail}, enrolment=enrolment
        )
    return await security_view(
        session, settings, viewer, codes=verdict.extra["recovery_codes"],
        notice="Your authenticator app is set up. Keep these recovery codes somewhere safe.",
    )  # fmt: skip


@pages.post("/account/security/recovery-codes", response_class=HTMLResponse)
async def regenerate(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await managing(request, session, settings)
    if isinstance(found, Response):
        return found
    viewer, form = found
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    password = form.get("regenerate_password", "")[:MAX_PASSWORD] or None
    code = form.get("regenerate_code", "").strip()[:MAX_CODE] or None
    if password is None and code is None:
        errors = {"regenerate_password": "Enter your password, or a code below."}
        return await security_view(session, settings, viewer, 422, errors=errors)
    client = client_info(request)
    failure = await service.prove(
        session, settings=settings, user=user, client=client, password=password, code=code
    )
    if failure is not None:
        field = "regenerate_code" if failure.code not in PASSWORD_CODES else "regenerate_password"
        return await security_view(
            session, settings, viewer, failure.status, **_refused(failure, field)
        )
    try:
        codes = await service.regenerate_recovery_codes(
            session, settings=settings, user=user, client=client
        )
    except ProblemError as exc:
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    notice = "New recovery codes are made; the old ones no longer work."
    return await security_view(session, settings, viewer, codes=codes, notice=notice)


PASSWORD_CODES = frozenset({"invalid_credentials", "account_locked"})


@pages.post("/account/security/totp/remove", response_class=HTMLResponse)
async def remove(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    found = await managing(request, session, settings)
    if isinstance(found, Response):
        return found
    viewer, form = found
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    password = form.get("remove_password", "")[:MAX_PASSWORD]
    code = form.get("remove_code", "").strip()[:MAX_CODE]
    errors = {}
    if not password:
        errors["remove_password"] = "Enter your password."  # noqa: S105 - a message
    if not code:
        errors["remove_code"] = "Enter a code from your app, or a recovery code."
    if errors:
        return await security_view(session, settings, viewer, 422, errors=errors)
    try:
        await service.removable(session, settings=settings, user=user)
    except ProblemError as exc:
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    client = client_info(request)
    failure = await service.prove(
        session, settings=settings, user=user, client=client, password=password, code=code
    )
    if failure is not None:
        field = "remove_password" if failure.code in PASSWORD_CODES else "remove_code"
        return await security_view(
            session, settings, viewer, failure.status, **_refused(failure, field)
        )
    try:  # a passkey removed meanwhile, in another tab: the app is then the last factor
        await service.disable_totp(session, settings=settings, user=user, client=client)
    except ProblemError as exc:
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    notice = "The authenticator app is removed, and its recovery codes with it."
    return await security_view(session, settings, viewer, notice=notice)
