"""A passkey as the second step of sign-in: the password, then an assertion bound to that
sign-in's challenge; every refusal a problem, counted against the challenge and the lockout,
audited, with no session opened (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import AuthSession, Role, User
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import create_sessionmaker
from backline.factors.challenge import Purpose, issue
from backline.factors.models import MfaChallenge
from backline.passkeys.models import Passkey
from tests.accounts.conftest import PASSWORD, bearer
from tests.factors.conftest import code_now
from tests.passkeys.authenticator import Authenticator, b64url
from tests.passkeys.conftest import LIMITS, ORIGIN, RP_ID, add_passkey, sign_in_options, signed_in


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """As the passkey tests', but five wrong tries do not lock the address here."""
    return make_settings(
        database_url=database_url,
        public_url=ORIGIN,
        rate_limits=LIMITS,
        lockout_threshold=20,
        mfa_required_roles="staff,admin",
    )


async def events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.created_at)
        )
        return list(rows.all())


async def count(engine: AsyncEngine, model: Any) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def challenges(engine: AsyncEngine) -> list[MfaChallenge]:
    async with create_sessionmaker(engine)() as session:
        return list((await session.scalars(select(MfaChallenge))).all())


def problem(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code


async def password_step(client: httpx.AsyncClient, email: str = "ann@example.com") -> str:
    answer = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["mfa_required"] is True, body
    assert "passkey" in body["methods"]
    token: str = body["challenge_token"]
    return token


async def options_for(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    answer = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": token})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    options: dict[str, Any] = answer.json()
    return options


async def verify(
    client: httpx.AsyncClient, token: str, credential: Any, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/auth/mfa/passkey/verify",
        json={"challenge_token": token, "credential": credential, **extra},
    )


@pytest.fixture
async def ann(
    client: httpx.AsyncClient, make_user: Callable[..., Any], authenticator: Authenticator
) -> Any:
    account = await make_user("ann@example.com")
    await add_passkey(client, await signed_in(client, account.email), authenticator)
    return account


async def test_a_full_sign_in_with_the_password_then_a_passkey(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator, engine: AsyncEngine
) -> None:
    login = await client.post("/api/auth/login", json={"email": ann.email, "password": PASSWORD})
    body = login.json()
    assert body["mfa_required"] is True
    assert body["methods"] == ["passkey"]
    assert body["enrolment_required"] is False
    assert "access_token" not in body
    token = body["challenge_token"]
    options = await options_for(client, token)
    assert options["rpId"] == RP_ID
    assert options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [authenticator.credentials[0].id]
    [issued] = await challenges(engine)
    assert issued.attempts == 0  # asking for options is no try

    done = await verify(client, token, authenticator.get(options))
    assert done.status_code == 200, done.text
    tokens = done.json()
    me = await client.get("/api/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["email"] == ann.email
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200

    opened = (await events(engine, "login_ok"))[-1]
    assert opened.details["factor"] == "passkey"
    assert opened.details["method"] == "password"
    [used] = await challenges(engine)
    assert used.consumed_at is not None
    async with create_sessionmaker(engine)() as session:
        stored = await session.scalar(select(Passkey))
    assert stored is not None
    assert stored.sign_count == 1
    assert stored.last_used_at is not None
    # The challenge is over: neither a second assertion nor new options.
    problem(await verify(client, token, authenticator.get(options)), 401, "challenge_used")
    answer = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": token})
    problem(answer, 401, "challenge_used")


async def test_browser_mode_sets_the_cookies(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator
) -> None:
    token = await password_step(client)
    options = await options_for(client, token)
    done = await verify(client, token, authenticator.get(options), mode="cookie")
    assert done.status_code == 200, done.text
    assert done.json()["access_token"] is None
    assert done.json()["csrf_token"]
    assert "backline_access" in done.headers.get("set-cookie", "") or done.cookies


def _another_account_s_passkey(ctx: dict[str, Any]) -> Any:
    return ctx["bobs"].get(ctx["options"])


def _passwordless_challenge(ctx: dict[str, Any]) -> Any:
    return ctx["authenticator"].get(ctx["passwordless"])


def _another_sign_in_s_challenge(ctx: dict[str, Any]) -> Any:
    return ctx["authenticator"].get(ctx["other_options"])


CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], int, str]] = {
    "another account's passkey": (_another_account_s_passkey, 401, "credential_mismatch"),
    "wrong origin": (
        lambda c: c["authenticator"].get(c["options"], origin="https://evil.example"),
        400,
        "wrong_origin",
    ),
    "wrong rp id": (
        lambda c: c["authenticator"].get(c["options"], rp_id="evil.example"),
        400,
        "wrong_rp_id",
    ),
    "replayed counter": (
        lambda c: c["authenticator"].get(c["options"], counter=1),
        401,
        "sign_count_replayed",
    ),
    "a challenge never issued": (
        lambda c: c["authenticator"].get({**c["options"], "challenge": b64url(bytes(32))}),
        400,
        "passkey_challenge_unknown",
    ),
    "a passwordless sign-in's challenge": (
        _passwordless_challenge,
        400,
        "passkey_challenge_unknown",
    ),
    "another sign-in's challenge": (
        _another_sign_in_s_challenge,
        400,
        "passkey_challenge_unknown",
    ),
    "not a credential": (lambda c: {"id": 1}, 400, "malformed_credential"),
    "a bad signature": (
        lambda c: {
            **c["authenticator"].get(c["options"]),
            "response": {
                **c["authenticator"].get(c["options"])["response"],
                "signature": b64url(b"\x30\x06" + b"\x00" * 6),
            },
        },
        401,
        "invalid_assertion",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_refused_assertion_is_a_counted_problem(
    case: str,
    client: httpx.AsyncClient,
    ann: Any,
    authenticator: Authenticator,
    make_user: Callable[..., Any],
    engine: AsyncEngine,
) -> None:
    make, status, code = CASES[case]
    bob = await make_user("bob@example.com", display_name="Bob")
    bobs = Authenticator(origin=ORIGIN)
    await add_passkey(client, await signed_in(client, bob.email), bobs)
    # One passwordless use first, so that Ann's counter stands at 1.
    first = authenticator.get(await sign_in_options(client))
    assert (await client.post("/api/auth/passkeys/verify", json={"credential": first})).is_success
    ctx: dict[str, Any] = {
        "authenticator": authenticator,
        "bobs": bobs,
        "other_options": await options_for(client, await password_step(client)),
        "passwordless": await sign_in_options(client, ann.email),
    }
    token = await password_step(client)
    ctx["options"] = await options_for(client, token)
    sessions_before = await count(engine, AuthSession)
    failed_before = len(await events(engine, "login_failed"))

    answer = await verify(client, token, make(ctx))
    problem(answer, status, code)
    assert answer.json()["detail"]
    assert await count(engine, AuthSession) == sessions_before
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(
            select(MfaChallenge).order_by(MfaChallenge.created_at.desc()).limit(1)
        )
    assert row is not None
    assert (row.attempts, row.consumed_at) == (1, None)  # counted, not used
    [wrong] = await events(engine, "mfa_failed")
    assert (wrong.user_id, wrong.details["reason"]) == (ann.user.id, code)
    assert wrong.details["tries_left"] == 4
    failed = await events(engine, "login_failed")
    assert len(failed) == failed_before + 1  # toward the address's lockout
    assert failed[-1].details["reason"] == code
    async with create_sessionmaker(engine)() as session:
        stored = await session.scalar(
            select(Passkey.sign_count).where(Passkey.user_id == ann.user.id)
        )
    assert stored == 1


async def test_five_refused_assertions_end_the_challenge(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator
) -> None:
    token = await password_step(client)
    for _ in range(5):
        options = await options_for(client, token)
        wrong = authenticator.get(options, origin="https://evil.example")
        problem(await verify(client, token, wrong), 400, "wrong_origin")
    answer = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": token})
    problem(answer, 401, "challenge_exhausted")
    problem(await verify(client, token, {"id": 1}), 401, "challenge_exhausted")
    # A new sign-in still works with the same passkey.
    token = await password_step(client)
    done = await verify(client, token, authenticator.get(await options_for(client, token)))
    assert done.status_code == 200, done.text


async def test_refused_assertions_lock_the_address_like_wrong_passwords(
    app_factory: Any,
    make_settings: Any,
    database_url: str,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
) -> None:
    from asgi_lifespan import LifespanManager

    settings = make_settings(
        database_url=database_url, public_url=ORIGIN, rate_limits=LIMITS, lockout_threshold=3
    )
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await make_user("ann@example.com")
            await add_passkey(client, await signed_in(client, "ann@example.com"), authenticator)
            token = await password_step(client)
            for _ in range(3):
                options = await options_for(client, token)
                await verify(client, token, authenticator.get(options, rp_id="evil.example"))
            options = await options_for(client, token)
            locked = await verify(client, token, authenticator.get(options))
            problem(locked, 429, "account_locked")
            assert int(locked.headers["Retry-After"]) > 0


async def test_options_need_a_live_sign_in_challenge_of_an_account_with_a_passkey(
    client: httpx.AsyncClient, ann: Any, engine: AsyncEngine, make_user: Callable[..., Any]
) -> None:
    answer = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": "x"})
    problem(answer, 401, "invalid_challenge")
    # An access token is no challenge token.
    await make_user("bob@example.com", display_name="Bob")
    bob_login = await client.post(
        "/api/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    access = bob_login.json()["access_token"]
    answer = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": access})
    problem(answer, 401, "invalid_challenge")
    refused = await events(engine, "mfa_challenge_refused")
    assert [e.details["reason"] for e in refused] == ["invalid_challenge"] * 2


async def test_an_account_without_a_passkey_gets_no_options(
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    account = await make_user("carl@example.com", display_name="Carl")
    async with engine.begin() as connection:  # as if Carl held another factor
        token, _ = await issue(
            connection,
            settings=settings,
            user_id=account.user.id,
            purpose=Purpose.SIGN_IN,
            client=ClientInfo(ip="203.0.113.7", user_agent="test"),
        )
    answer = await client.post("/api/auth/mfa/passkey/options", json={"challenge_token": token})
    problem(answer, 409, "no_passkey")


async def make_staff(engine: AsyncEngine, user_id: Any) -> None:
    """The role changed after the account made its passkey (staff must hold a factor)."""
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(update(User).where(User.id == user_id).values(role=Role.STAFF))


async def test_a_role_that_needs_a_factor_counts_a_passkey(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator, engine: AsyncEngine
) -> None:
    await make_staff(engine, ann.user.id)
    login = await client.post("/api/auth/login", json={"email": ann.email, "password": PASSWORD})
    body = login.json()
    # A normal second step, not the enrolment of an authenticator app.
    assert (body["enrolment_required"], body["methods"]) == (False, ["passkey"])
    token = body["challenge_token"]
    done = await verify(client, token, authenticator.get(await options_for(client, token)))
    assert done.status_code == 200, done.text
    headers = bearer(done.json())
    state = await client.get("/api/me/factors", headers=headers)
    assert state.status_code == 200
    found = state.json()
    assert (found["required"], found["required_met"]) == (True, True)
    assert found["methods"] == ["passkey"]
    assert found["totp"]["enabled"] is False

    # The last passkey cannot go while the role needs a factor; one of two can.
    [only] = (await client.get("/api/me/passkeys", headers=headers)).json()["items"]
    refused = await client.delete(f"/api/me/passkeys/{only['id']}", headers=headers)
    problem(refused, 409, "factor_required")
    await add_passkey(client, headers, authenticator, name="Phone")
    gone = await client.delete(f"/api/me/passkeys/{only['id']}", headers=headers)
    assert gone.status_code == 204, gone.text
    [last] = (await client.get("/api/me/passkeys", headers=headers)).json()["items"]
    problem(
        await client.delete(f"/api/me/passkeys/{last['id']}", headers=headers),
        409,
        "factor_required",
    )
    assert await count(engine, Passkey) == 1
    assert len(await events(engine, "passkey_removed")) == 1


async def test_without_its_passkey_a_role_that_needs_a_factor_must_enrol(
    client: httpx.AsyncClient, ann: Any, engine: AsyncEngine
) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(delete(Passkey))
    await make_staff(engine, ann.user.id)
    body = (
        await client.post("/api/auth/login", json={"email": ann.email, "password": PASSWORD})
    ).json()
    assert (body["enrolment_required"], body["methods"]) == (True, ["totp"])


async def test_an_authenticator_app_may_go_while_a_passkey_stays(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator, engine: AsyncEngine
) -> None:
    await make_staff(engine, ann.user.id)
    token = await password_step(client)
    done = await verify(client, token, authenticator.get(await options_for(client, token)))
    headers = bearer(done.json())
    started = await client.post(
        "/api/me/factors/totp", json={"password": PASSWORD}, headers=headers
    )
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/api/me/factors/totp/confirm",
        json={"code": code_now(secret, steps=-1)},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    body = (
        await client.post("/api/auth/login", json={"email": ann.email, "password": PASSWORD})
    ).json()
    assert body["methods"] == ["totp", "recovery_code", "passkey"]
    # With a passkey held, the app is not the last factor.
    removed = await client.request(
        "DELETE",
        "/api/me/factors/totp",
        json={"password": PASSWORD, "code": codes[0]},
        headers=headers,
    )
    assert removed.status_code == 204, removed.text
    [only] = (await client.get("/api/me/passkeys", headers=headers)).json()["items"]
    problem(
        await client.delete(f"/api/me/passkeys/{only['id']}", headers=headers),
        409,
        "factor_required",
    )


async def test_a_plain_account_may_remove_its_only_passkey(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator
) -> None:
    token = await password_step(client)
    done = await verify(client, token, authenticator.get(await options_for(client, token)))
    headers = bearer(done.json())
    state = (await client.get("/api/me/factors", headers=headers)).json()
    assert (state["required"], state["required_met"], state["methods"]) == (
        False,
        True,
        ["passkey"],
    )
    [only] = (await client.get("/api/me/passkeys", headers=headers)).json()["items"]
    assert (
        await client.delete(f"/api/me/passkeys/{only['id']}", headers=headers)
    ).status_code == 204
    # Then the password alone signs in again.
    again = await client.post("/api/auth/login", json={"email": ann.email, "password": PASSWORD})
    assert "access_token" in again.json()


async def test_passwordless_sign_in_with_a_passkey_satisfies_a_role_that_needs_a_factor(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator, engine: AsyncEngine
) -> None:
    await make_staff(engine, ann.user.id)
    options = await sign_in_options(client)
    done = await client.post(
        "/api/auth/passkeys/verify", json={"credential": authenticator.get(options)}
    )
    assert done.status_code == 200, done.text
    assert (await client.get("/api/me", headers=bearer(done.json()))).status_code == 200
    opened = (await events(engine, "login_ok"))[-1]
    assert opened.details["method"] == "passkey"
    assert not await challenges(engine)  # no second step asked
