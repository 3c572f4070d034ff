"""Signing in with the loopback OpenID provider: the whole flow, linking, and each refusal."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import AuthSession, Role, User
from backline.app import Backline
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.oidc.models import OidcAttempt, OidcIdentity
from tests.accounts.conftest import bearer, login
from tests.factors.conftest import code_now, enrol, second_step
from tests.oidc.conftest import (
    OIDC_LIMITS,
    PUBLIC_URL,
    approve,
    browser,
    sign_in,
    to_callback,
)
from tests.oidc.provider import Provider

pytestmark = pytest.mark.anyio


async def _count(engine: AsyncEngine, model: Any) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.event == name)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return list(rows.all())


async def _user(engine: AsyncEngine, user_id: Any) -> User:
    async with create_sessionmaker(engine)() as session:
        found = await session.get(User, user_id)
        assert found is not None
        return found


def _failures_counted(answer: httpx.Response, spent: int) -> bool:
    """Whether the answer reports `spent` refused callbacks against the `oidc_failure` limit."""
    limit = int(OIDC_LIMITS["oidc_failure"].split("/")[0])
    return f'"oidc_failure";r={limit - spent};' in answer.headers.get("ratelimit", "")


async def _password_login(client: httpx.AsyncClient, account: Any) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )


# A provider's answer that must be refused: how the provider misbehaves, the status, the code.
BAD_ID_TOKENS = [
    pytest.param({"email_verified": False}, 403, "oidc_email_unverified", id="unverified"),
    pytest.param(
        {"claims": {"nonce": "not-the-one-sent"}}, 401, "oidc_id_token_invalid", id="nonce"
    ),
    pytest.param(
        {"claims": {"iss": "http://127.0.0.1:1/elsewhere"}},
        401,
        "oidc_id_token_invalid",
        id="issuer",
    ),
    pytest.param({"claims": {"aud": "someone-else"}}, 401, "oidc_id_token_invalid", id="audience"),
    pytest.param(
        {"claims": {"exp": 1_000_000, "iat": 999_000}}, 401, "oidc_id_token_invalid", id="expired"
    ),
    pytest.param({"sign_with_other_key": True}, 401, "oidc_id_token_invalid", id="other-key"),
]


async def test_start_redirects_with_pkce_state_and_nonce(client: httpx.AsyncClient) -> None:
    started = await client.get("/api/auth/oidc/testid/start")
    assert started.status_code == 303
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["https://testserver/api/auth/oidc/testid/callback"]
    assert len(query["state"][0]) >= 40
    assert len(query["nonce"][0]) >= 40
    assert len(query["code_challenge"][0]) == 43
    cookie = started.headers["set-cookie"]
    assert "backline_oidc=" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/api/auth/oidc" in cookie
    assert "SameSite=lax" in cookie


async def test_a_new_person_signs_in_and_gets_a_verified_account(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    done = await sign_in(client)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/dashboard"
    csrf = client.cookies["backline_csrf"]
    me = await client.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "ann@example.com"
    listed = await client.get("/api/auth/oidc/identities")
    assert listed.status_code == 200
    body = listed.json()
    assert body["has_password"] is False
    assert [(i["provider"], i["subject"]) for i in body["items"]] == [("testid", "subject-1")]
    assert csrf
    assert await _count(engine, AuthSession) == 1
    assert len(await _events(engine, "login_ok")) == 1
    assert len(await _events(engine, "oidc_linked")) == 1
    # No password matches the account's (none was set): password login refuses.
    refused = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": "!no-password"}
    )
    assert refused.status_code == 401
    # Signing in again finds the same account through the identity.
    client.cookies.clear()
    again = await sign_in(client)
    assert again.status_code == 303
    assert await _count(engine, User) == 1
    assert await _count(engine, OidcIdentity) == 1


async def test_an_existing_account_with_the_verified_email_gets_linked(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Callable[..., Any]
) -> None:
    account = await make_user("ann@example.com")
    done = await sign_in(client)
    assert done.status_code == 303, done.text
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(OidcIdentity))
        assert row is not None
        assert row.user_id == account.user.id
    assert await _count(engine, User) == 1
    [linked] = await _events(engine, "oidc_linked")
    assert linked.details == {"provider": "testid"}  # an address confirmed before: untouched
    await login(client, "ann@example.com")  # the password still works


async def test_no_new_account_when_the_setting_forbids_it(
    app_factory: Callable[[Settings], Backline],
    oidc_settings: Callable[..., Settings],
    provider: Provider,
    engine: AsyncEngine,
) -> None:
    app = app_factory(oidc_settings(oidc_create_accounts=False))
    async with LifespanManager(app), browser(app, provider) as client:
        done = await sign_in(client)
    assert done.status_code == 403
    assert done.json()["code"] == "oidc_no_account"
    assert await _count(engine, User) == 0


@pytest.mark.parametrize(("misbehave", "status", "code"), BAD_ID_TOKENS)
async def test_a_bad_id_token_is_refused_audited_and_writes_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    provider: Provider,
    misbehave: dict[str, Any],
    status: int,
    code: str,
) -> None:
    for name, value in misbehave.items():
        setattr(provider, name, value)
    done = await sign_in(client)
    assert done.status_code == status, done.text
    assert done.headers["content-type"].startswith("application/problem+json")
    assert done.json()["code"] == code
    assert "backline_access" not in client.cookies
    assert await _count(engine, User) == 0
    assert await _count(engine, OidcIdentity) == 0
    assert await _count(engine, AuthSession) == 0
    failed = await _events(engine, "oidc_failed")
    assert [(event.details["code"], event.user_id) for event in failed] == [(code, None)]
    assert _failures_counted(done, 1), done.headers


@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "unconfirmed"])
async def test_an_unverified_email_never_reaches_the_account_that_has_it(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    provider: Provider,
    make_user: Callable[..., Any],
    confirmed: bool,
) -> None:
    account = await make_user("ann@example.com", verified=confirmed)
    before = await _user(engine, account.user.id)
    provider.email_verified = False
    done = await sign_in(client)
    assert (done.status_code, done.json()["code"]) == (403, "oidc_email_unverified"), done.text
    assert done.headers["content-type"].startswith("application/problem+json")
    assert _failures_counted(done, 1), done.headers
    assert "backline_access" not in client.cookies
    after = await _user(engine, account.user.id)
    assert (after.password_hash, after.email_verified_at, after.password_changed_at) == (
        before.password_hash,
        before.email_verified_at,
        before.password_changed_at,
    )
    assert await _count(engine, OidcIdentity) == 0
    assert await _count(engine, AuthSession) == 0
    assert not await _events(engine, "oidc_linked")
    [failed] = await _events(engine, "oidc_failed")
    assert (failed.details["code"], failed.user_id) == ("oidc_email_unverified", None)
    # The password is still the account's: it signs in, or is told to confirm the address
    # first (as only a right password is), not refused as a wrong one.
    login = await _password_login(client, account)
    if confirmed:
        assert login.status_code == 200, login.text
    else:
        assert (login.status_code, login.json()["code"]) == (403, "email_not_verified")


async def test_a_verified_identity_confirms_an_unconfirmed_account_and_voids_its_password(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Callable[..., Any]
) -> None:
    account = await make_user("ann@example.com", verified=False)
    waiting = await _password_login(client, account)
    assert (waiting.status_code, waiting.json()["code"]) == (403, "email_not_verified")
    done = await sign_in(client)
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard"), done.text
    me = await client.get("/api/me")
    assert (me.json()["id"], me.json()["email"]) == (str(account.user.id), "ann@example.com")
    listed = (await client.get("/api/auth/oidc/identities")).json()
    assert listed["has_password"] is False
    assert [i["subject"] for i in listed["items"]] == ["subject-1"]
    user = await _user(engine, account.user.id)
    assert user.email_verified_at is not None
    assert user.password_changed_at is not None
    assert await _count(engine, User) == 1
    [linked] = await _events(engine, "oidc_linked")
    assert linked.user_id == account.user.id
    assert linked.details == {
        "provider": "testid",
        "address_confirmed": True,
        "password_cleared": True,
    }
    # The password chosen by whoever never proved the address no longer signs in: refused as
    # a wrong password is, now that the address is confirmed.
    client.cookies.clear()
    old = await _password_login(client, account)
    assert (old.status_code, old.json()["code"]) == (401, "invalid_credentials")


async def test_a_discovery_naming_another_issuer_is_refused_and_writes_nothing(
    app: Backline, client: httpx.AsyncClient, provider: Provider, engine: AsyncEngine
) -> None:
    provider.discovery_issuer = "http://127.0.0.1:1/elsewhere"
    started = await client.get("/api/auth/oidc/testid/start")
    assert started.status_code == 503, started.text
    assert started.headers["content-type"].startswith("application/problem+json")
    problem = started.json()
    assert problem["code"] == "oidc_provider_unavailable"
    assert "another issuer" in problem["detail"]
    assert "backline_oidc" not in started.headers.get("set-cookie", "")
    assert await _count(engine, OidcAttempt) == 0
    # The refusal is not remembered: once the provider names itself, sign-in starts.
    provider.discovery_issuer = None
    callback = await to_callback(client)
    # A worker that has not read the discovery yet meets the wrong issuer at the callback.
    provider.discovery_issuer = "http://127.0.0.1:1/elsewhere"
    app.state.oidc_directory = None
    done = await client.get(callback)
    assert (done.status_code, done.json()["code"]) == (503, "oidc_provider_unavailable")
    assert done.headers["content-type"].startswith("application/problem+json")
    assert _failures_counted(done, 1), done.headers
    assert provider.token_requests == 0  # the code never went to the token endpoint
    assert await _count(engine, User) == 0
    assert await _count(engine, OidcIdentity) == 0
    assert await _count(engine, AuthSession) == 0
    [failed] = await _events(engine, "oidc_failed")
    assert failed.details == {"provider": "testid", "code": "oidc_provider_unavailable"}


@pytest.mark.usefixtures("one_window")  # three refusals counted: inside one minute's window
async def test_wrong_state_another_browser_and_a_replay_are_refused(
    app: Backline, client: httpx.AsyncClient, provider: Provider, engine: AsyncEngine
) -> None:
    callback = await to_callback(client)
    forged = callback.replace("state=", "state=x")
    wrong = await client.get(forged)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "oidc_state_invalid")
    async with browser(app, provider) as other:  # no cookie of this attempt
        elsewhere = await other.get(await to_callback(client))
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (400, "oidc_state_invalid")
    callback = await to_callback(client)
    first = await client.get(callback)
    assert first.status_code == 303
    client.cookies.clear()
    replayed = await client.get(callback)
    assert (replayed.status_code, replayed.json()["code"]) == (400, "oidc_state_used")
    assert await _count(engine, AuthSession) == 1
    assert provider.token_requests == 1  # the refused callbacks never reached the provider
    failed = await _events(engine, "oidc_failed")
    assert [(e.details["code"], e.details["provider"], e.user_id) for e in failed] == [
        ("oidc_state_invalid", "testid", None),
        ("oidc_state_invalid", "testid", None),
        ("oidc_state_used", "testid", None),
    ]
    assert _failures_counted(replayed, 3), replayed.headers


async def test_an_unknown_provider_is_404(client: httpx.AsyncClient) -> None:
    started = await client.get("/api/auth/oidc/nowhere/start")
    assert (started.status_code, started.json()["code"]) == (404, "oidc_unknown_provider")
    back = await client.get("/api/auth/oidc/nowhere/callback?state=abc&code=def")
    assert (back.status_code, back.json()["code"]) == (404, "oidc_unknown_provider")


async def test_a_browser_is_sent_back_to_the_login_page_with_the_error(
    client: httpx.AsyncClient, provider: Provider
) -> None:
    provider.email_verified = False
    callback = await to_callback(client)
    done = await client.get(callback, headers={"Accept": "text/html"})
    assert done.status_code == 303
    assert done.headers["location"] == "/login?error=oidc_email_unverified"
    page = await client.get("/login?error=oidc_email_unverified", headers={"Accept": "text/html"})
    assert "has not verified your email" in page.text


async def _wrong_state(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/api/auth/oidc/testid/callback?state=wrong&code=x")


async def _another_browser(client: httpx.AsyncClient) -> httpx.Response:
    callback = await to_callback(client)
    client.cookies.delete("backline_oidc", path="/api/auth/oidc")
    return await client.get(callback)


@pytest.mark.usefixtures("one_window")
@pytest.mark.parametrize(
    ("fail", "misbehave", "status", "code"),
    [
        pytest.param(_wrong_state, {}, 400, "oidc_state_invalid", id="wrong-state"),
        pytest.param(_another_browser, {}, 400, "oidc_state_invalid", id="another-browser"),
        *(pytest.param(sign_in, *bad.values, id=bad.id) for bad in BAD_ID_TOKENS),
    ],
)
async def test_failed_callbacks_are_counted_against_the_limit(
    app_factory: Callable[[Settings], Backline],
    oidc_settings: Callable[..., Settings],
    provider: Provider,
    engine: AsyncEngine,
    fail: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    misbehave: dict[str, Any],
    status: int,
    code: str,
) -> None:
    for name, value in misbehave.items():
        setattr(provider, name, value)
    limits = {**OIDC_LIMITS, "oidc_failure": "2/minute"}
    app = app_factory(oidc_settings(rate_limits=limits))
    async with LifespanManager(app), browser(app, provider) as client:
        codes = []
        for _ in range(3):
            answer = await fail(client)
            codes.append((answer.status_code, answer.json()["code"]))
    assert codes[:2] == [(status, code)] * 2
    assert codes[2] == (429, "rate_limited")
    assert [e.details["code"] for e in await _events(engine, "oidc_failed")] == [code] * 3
    assert await _count(engine, OidcIdentity) == 0
    assert await _count(engine, AuthSession) == 0


async def test_linking_unlinking_and_keeping_a_way_to_sign_in(
    client: httpx.AsyncClient, engine: AsyncEngine, provider: Provider, make_user: Any
) -> None:
    await make_user("bob@example.com", display_name="Bob")
    tokens = await login(client, "bob@example.com")
    headers = bearer(tokens)
    started = await client.post("/api/auth/oidc/testid/link", headers=headers)
    assert started.status_code == 200, started.text
    done = await client.get(await approve(client, started.json()["authorization_url"]))
    assert (done.status_code, done.headers["location"]) == (303, "/account?linked=1")
    listed = (await client.get("/api/auth/oidc/identities", headers=headers)).json()
    assert [i["email"] for i in listed["items"]] == ["ann@example.com"]
    assert listed["has_password"] is True
    export = await client.get("/api/me/export", headers=headers)
    exported = export.json()["oidc_identities"]
    assert exported[0]["provider"] == "testid"
    assert exported[0]["subject"] == "subject-1"
    assert "token" not in str(exported).lower()
    # The same identity cannot then be someone else's.
    client.cookies.clear()
    await make_user("cy@example.com", display_name="Cy")
    cy = bearer(await login(client, "cy@example.com"))
    other = await client.post("/api/auth/oidc/testid/link", headers=cy)
    taken = await client.get(await approve(client, other.json()["authorization_url"]))
    assert (taken.status_code, taken.json()["code"]) == (409, "oidc_identity_linked_elsewhere")
    # Bob has a password: unlinking is allowed, and audited.
    gone = await client.delete(
        f"/api/auth/oidc/identities/{listed['items'][0]['id']}", headers=headers
    )
    assert gone.status_code == 204
    assert len(await _events(engine, "oidc_unlinked")) == 1
    again = await client.delete(
        f"/api/auth/oidc/identities/{listed['items'][0]['id']}", headers=headers
    )
    assert (again.status_code, again.json()["code"]) == (404, "oidc_identity_not_found")


async def test_the_last_way_to_sign_in_cannot_be_unlinked(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    assert (await sign_in(client)).status_code == 303
    listed = (await client.get("/api/auth/oidc/identities")).json()
    csrf = {"X-CSRF-Token": client.cookies["backline_csrf"], "Origin": "https://testserver"}
    refused = await client.delete(
        f"/api/auth/oidc/identities/{listed['items'][0]['id']}", headers=csrf
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "oidc_last_sign_in")
    assert await _count(engine, OidcIdentity) == 1


async def test_deleting_the_account_removes_its_identities(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    account = await make_user("ann@example.com")
    assert (await sign_in(client)).status_code == 303
    client.cookies.clear()
    headers = bearer(await login(client, "ann@example.com"))
    deleted = await client.request(
        "DELETE", "/api/me", json={"password": account.password}, headers=headers
    )
    assert deleted.status_code == 204, deleted.text
    assert await _count(engine, OidcIdentity) == 0


async def test_attempts_expired_a_day_ago_are_cleared(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from datetime import timedelta

    from backline.db import utcnow

    old = utcnow() - timedelta(days=2)
    async with create_sessionmaker(engine)() as session, session.begin():
        session.add(
            OidcAttempt(
                state_hash="0" * 64,
                browser_hash="0" * 64,
                provider="testid",
                intent="sign_in",
                nonce="n",
                code_verifier="v",
                created_at=old,
                expires_at=old,
            )
        )
    assert (await client.get("/api/auth/oidc/testid/start")).status_code == 303
    async with create_sessionmaker(engine)() as session:
        states = (await session.scalars(select(OidcAttempt.state_hash))).all()
    assert len(states) == 1
    assert states[0] != "0" * 64


async def test_an_account_with_a_second_factor_gets_the_challenge_then_signs_in_with_a_code(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Callable[..., Any]
) -> None:
    account = await make_user("ann@example.com")
    secret, _ = await enrol(client, await login(client, "ann@example.com"))
    sessions_before = await _count(engine, AuthSession)
    done = await sign_in(client)
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    body = done.json()
    assert body["mfa_required"] is True
    assert body["methods"] == ["totp", "recovery_code"]
    assert body["enrolment_required"] is False
    assert "access_token" not in body
    assert "backline_access" not in client.cookies
    assert await _count(engine, AuthSession) == sessions_before  # no session yet
    assert await _count(engine, OidcIdentity) == 1  # linked; the next sign-in asks again
    [issued] = [
        e for e in await _events(engine, "mfa_challenge_issued") if e.details["via"] == "oidc"
    ]
    assert issued.user_id == account.user.id
    # A wrong code is refused and counted as after a password; the right one signs in.
    right = code_now(secret)
    wrong = await second_step(
        client, body["challenge_token"], code=f"{(int(right) + 1) % 1_000_000:06d}"
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_mfa_code")
    verified = await second_step(client, body["challenge_token"], code=right)
    assert verified.status_code == 200, verified.text
    me = await client.get("/api/me", headers=bearer(verified.json()))
    assert me.json()["email"] == "ann@example.com"
    opened = [e for e in await _events(engine, "login_ok") if e.details["method"] == "oidc"]
    assert [(e.details["factor"], e.user_id) for e in opened] == [("totp", account.user.id)]
    assert not await _events(engine, "oidc_failed")
    # The challenge is for the second step alone.
    again = await second_step(client, body["challenge_token"], code=right)
    assert (again.status_code, again.json()["code"]) == (401, "challenge_used")


async def test_a_browser_back_from_the_provider_is_shown_the_second_step(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Callable[..., Any]
) -> None:
    await make_user("ann@example.com")
    _, codes = await enrol(client, await login(client, "ann@example.com"))
    callback = await to_callback(client)
    page = await client.get(callback, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "backline_access" not in client.cookies
    token = re.search(r'name="challenge_token" value="([^"]+)"', page.text)
    assert token
    assert token.group(1) not in page.headers.get("location", "")
    done = await client.post(
        "/login/verify",
        data={"challenge_token": token.group(1), "recovery_code": codes[0]},
        headers={"Accept": "text/html", "Origin": PUBLIC_URL},
    )
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard")
    assert (await client.get("/api/me")).json()["email"] == "ann@example.com"


async def test_a_role_that_needs_a_factor_enrols_after_the_provider(
    app_factory: Callable[[Settings], Backline],
    oidc_settings: Callable[..., Settings],
    provider: Provider,
    engine: AsyncEngine,
    make_user: Callable[..., Any],
) -> None:
    app = app_factory(oidc_settings(mfa_required_roles="staff,admin"))
    await make_user("ann@example.com", role=Role.STAFF)
    async with LifespanManager(app), browser(app, provider) as client:
        done = await sign_in(client)
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["enrolment_required"], body["methods"]) == (True, ["totp"])
        assert await _count(engine, AuthSession) == 0
        token = body["challenge_token"]
        started = await client.post("/api/auth/mfa/enrol/totp", json={"challenge_token": token})
        assert started.status_code == 200, started.text
        confirmed = await client.post(
            "/api/auth/mfa/enrol/totp/confirm",
            json={"challenge_token": token, "code": code_now(started.json()["secret"])},
        )
        assert confirmed.status_code == 200, confirmed.text
        assert len(confirmed.json()["recovery_codes"]) == 10
        me = await client.get("/api/me", headers=bearer(confirmed.json()))
        assert me.json()["email"] == "ann@example.com"
    [opened] = await _events(engine, "login_ok")
    assert (opened.details["method"], opened.details["factor"]) == ("oidc", "totp")


async def test_an_account_without_a_factor_signs_in_at_once_through_the_shared_opening(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    done = await sign_in(client)
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard")
    [opened] = await _events(engine, "login_ok")
    assert (opened.details["method"], opened.details["provider"]) == ("oidc", "testid")
    assert not await _events(engine, "mfa_challenge_issued")


async def test_a_passkey_completes_the_sign_in_a_provider_began(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Callable[..., Any]
) -> None:
    from tests.passkeys.authenticator import Authenticator
    from tests.passkeys.conftest import add_passkey

    account = await make_user("ann@example.com")
    authenticator = Authenticator(origin=PUBLIC_URL)
    await add_passkey(client, bearer(await login(client, "ann@example.com")), authenticator)
    done = await sign_in(client)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["methods"] == ["passkey"]
    token = body["challenge_token"]
    options = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": token})
    assert options.status_code == 200, options.text
    verified = await client.post(
        "/api/auth/mfa/passkey/verify",
        json={"challenge_token": token, "credential": authenticator.get(options.json())},
    )
    assert verified.status_code == 200, verified.text
    assert (await client.get("/api/me", headers=bearer(verified.json()))).status_code == 200
    [opened] = [e for e in await _events(engine, "login_ok") if e.details["method"] == "oidc"]
    assert (opened.user_id, opened.details["factor"]) == (account.user.id, "passkey")
