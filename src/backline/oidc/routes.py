"""OpenID Connect routes under `/api/auth/oidc`.

Public: `GET /providers`, `GET /{provider}/start` (303 to the provider), `GET /{provider}/callback`
(303 to the dashboard with the session cookies set, as a browser password sign-in sets them).

A provider proves the email address, not the account's second factor. An account that must
show one (it holds one, or its role requires one) gets from the callback the challenge a right
password gets (`accounts.second_step`, with `via: oidc`), and signs in with its code, recovery
code or passkey at `/api/auth/mfa/*`: an API client gets the challenge as JSON (200, as
`POST /api/auth/login` answers it), a browser the portal's second step (registered with
`show_second_step_with`), the token in its form, never in a URL. The identity linked by the
callback stays linked: the next sign-in through it asks for the second factor again.
Signed in: `GET /identities`, `POST /{provider}/link` (answers the URL to send the browser to),
`DELETE /identities/{id}`.

The attempt is bound to the browser by `backline_oidc`, an HttpOnly, SameSite=Lax cookie holding
a random value whose digest the attempt row keeps, limited to `/api/auth/oidc` and 10 minutes.
A failed callback is audited (`oidc_failed`, with its code) and counted against the
`oidc_failure` limit; a browser (asking for HTML) is sent back to `/login?error=<code>`, an API
client gets the problem.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from backline.accounts import auth, second_step, signin
from backline.accounts.cookies import set_session_cookies
from backline.accounts.deps import CurrentUser
from backline.accounts.routes import challenge_response
from backline.accounts.schemas import MfaChallengeResponse
from backline.accounts.tokens import csrf_token
from backline.apidoc.declare import raises
from backline.audit import service as audit
from backline.config import Settings
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import ProblemError, problem_response
from backline.oidc import errors, provider, service
from backline.oidc.errors import OidcError
from backline.oidc.schemas import IdentityList, IdentityOut, LinkStarted, ProviderOut
from backline.ratelimit.deps import RateLimit, charge
from backline.routing import router

PREFIX = "/api/auth/oidc"
BROWSER_COOKIE = "backline_oidc"

public = router(public=True, prefix=PREFIX, tags=["auth"])
signed_in = router(prefix=PREFIX, tags=["auth"])

SecondStepPage = Callable[[Request, second_step.Challenge], Awaitable[Response]]
_second_step_pages: list[SecondStepPage] = []


def show_second_step_with(page: SecondStepPage) -> None:
    """The portal's second step, shown to a browser whose provider sign-in needs one (the
    portal registers it; without one, a browser gets the JSON an API client gets)."""
    if page not in _second_step_pages:
        _second_step_pages.append(page)


async def _challenge_answer(request: Request, found: second_step.Challenge) -> Response:
    if _second_step_pages and "text/html" in request.headers.get("accept", ""):
        return await _second_step_pages[0](request, found)
    return JSONResponse(challenge_response(found).model_dump(mode="json"))


def directory(request: Request) -> provider.Directory:
    found: provider.Directory | None = getattr(request.app.state, "oidc_directory", None)
    if found is None or found.http is not request.app.state.http:
        found = provider.Directory(request.app.state.http)
        request.app.state.oidc_directory = found
    return found


def bind_browser(response: Response, *, settings: Settings, value: str) -> None:
    response.set_cookie(
        BROWSER_COOKIE,
        value,
        max_age=service.ATTEMPT_MINUTES * 60,
        httponly=True,
        secure=settings.env != "development",
        samesite="lax",
        path=PREFIX,
    )


async def begin_attempt(
    request: Request, *, settings: Settings, name: str, intent: str, user_id: uuid.UUID | None
) -> service.Begun:
    settings_provider = service.provider_of(settings, name)
    metadata = await directory(request).metadata(settings_provider)
    async with request.app.state.sessionmaker() as session, session.begin():
        return await service.begin(
            session, settings=settings, name=name, metadata=metadata, intent=intent, user_id=user_id
        )


@public.get("/providers", response_model=list[ProviderOut])
async def providers(settings: SettingsDep) -> Any:
    return [
        ProviderOut(
            name=name,
            display_name=entry.display_name or name,
            start_url=f"{PREFIX}/{name}/start",
        )
        for name, entry in settings.oidc_providers.items()
    ]


@public.get(
    "/{provider_name}/start",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    dependencies=[RateLimit("oidc")],
)
@raises(errors.UNKNOWN_PROVIDER, errors.UNAVAILABLE)
async def start(provider_name: str, request: Request, settings: SettingsDep) -> Any:
    begun = await begin_attempt(
        request, settings=settings, name=provider_name, intent=service.Intent.SIGN_IN, user_id=None
    )
    response = RedirectResponse(begun.authorization_url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    bind_browser(response, settings=settings, value=begun.browser)
    return response


async def _refuse(request: Request, name: str, error: ProblemError) -> Response:
    """Audit and count a failed callback, then answer it (a page for a browser)."""
    client = client_info(request)
    async with request.app.state.sessionmaker() as session, session.begin():
        await audit.record(
            session,
            event="oidc_failed",
            user_id=None,
            client=client,
            provider=name[:32],
            code=error.code,
        )
    await charge(request, "oidc_failure")  # 429 once the failures are spent
    if "text/html" in request.headers.get("accept", ""):
        response: Response = RedirectResponse(f"/login?error={error.code}", status_code=303)
    else:
        response = problem_response(error.status, error.code, error.detail)
    response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(BROWSER_COOKIE, path=PREFIX)
    return response


@public.get(
    "/{provider_name}/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses={
        200: {
            "model": MfaChallengeResponse,
            "description": "the account must prove a second factor: the challenge (no session)",
        }
    },
    dependencies=[RateLimit("oidc")],
)
@raises(*errors.ALL, (429, "rate_limited"))
async def callback(
    provider_name: str,
    request: Request,
    settings: SettingsDep,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    client = client_info(request)
    try:
        entry = service.provider_of(settings, provider_name)
        async with request.app.state.sessionmaker() as session, session.begin():
            claimed = await service.claim(
                session,
                name=provider_name,
                state=state,
                browser=request.cookies.get(BROWSER_COOKIE),
            )  # committed: this state is spent whatever follows
        if error is not None or not code:
            raise errors.refused(*errors.PROVIDER_ERROR, "The provider did not sign you in.")
        found = directory(request)
        metadata = await found.metadata(entry)
        id_token = await provider.exchange(
            request.app.state.http,
            metadata=metadata,
            provider=entry,
            code=code,
            verifier=claimed.code_verifier,
            redirect_uri=service.redirect_uri(settings, provider_name),
        )
        identity = await provider.validate(
            found, provider=entry, id_token=id_token, nonce=claimed.nonce
        )
        async with request.app.state.sessionmaker() as session, session.begin():
            done = await service.complete(
                session, settings=settings, claimed=claimed, identity=identity, client=client
            )
            opened: auth.TokenPair | None = None
            asked: second_step.Challenge | None = None
            if done.intent == service.Intent.SIGN_IN:
                connection = await session.connection()
                # A provider proves the email address, not the account's second factor: an
                # account that must show one gets the challenge a right password gets.
                asked = await second_step.ask(
                    connection, settings=settings, user_id=done.user_id, client=client, via="oidc"
                )
                if asked is None:
                    opened = await signin.open_session(
                        connection,
                        settings=settings,
                        revocations=request.app.state.revocations,
                        user_id=done.user_id,
                        client=client,
                        method="oidc",
                        provider=provider_name,
                    )
                    if opened is None:  # the account was removed meanwhile
                        raise errors.refused(*errors.NO_ACCOUNT, "No account uses this address.")
    except OidcError as exc:
        return await _refuse(request, provider_name, exc)
    response: Response
    if asked is not None:
        response = await _challenge_answer(request, asked)
    elif opened is None:
        response = RedirectResponse("/account?linked=1", status_code=303)
    else:
        response = RedirectResponse("/dashboard", status_code=303)
        set_session_cookies(
            response,
            settings=settings,
            access=opened.access_token,
            refresh=opened.refresh_token,
            csrf=csrf_token(settings.signing_key, opened.session_id),
        )
    response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(BROWSER_COOKIE, path=PREFIX)
    return response


@signed_in.get("/identities", response_model=IdentityList)
async def identities(user: CurrentUser, session: SessionDep) -> Any:
    rows = await service.identities(session, user_id=user.id)
    return IdentityList(
        items=[IdentityOut.model_validate(row, from_attributes=True) for row in rows],
        has_password=service.has_password(user),
    )


@signed_in.post("/{provider_name}/link", response_model=LinkStarted)
@raises(errors.UNKNOWN_PROVIDER, errors.UNAVAILABLE)
async def link(
    provider_name: str,
    user: CurrentUser,
    request: Request,
    response: Response,
    settings: SettingsDep,
) -> Any:
    begun = await begin_attempt(
        request, settings=settings, name=provider_name, intent=service.Intent.LINK, user_id=user.id
    )
    bind_browser(response, settings=settings, value=begun.browser)
    response.headers["Cache-Control"] = "no-store"
    return LinkStarted(authorization_url=begun.authorization_url)


@signed_in.delete("/identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT)
@raises((404, "oidc_identity_not_found"), errors.LAST_SIGN_IN)
async def unlink(
    identity_id: uuid.UUID, user: CurrentUser, request: Request, session: SessionDep
) -> None:
    await service.unlink(session, user=user, identity_id=identity_id, client=client_info(request))


__all__ = ["public", "signed_in"]
