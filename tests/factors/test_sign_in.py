"""Signing in with a second factor over the API: the challenge, TOTP, recovery codes, and every
way a second step is refused, each audited and counted (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.accounts.tokens import now
from backline.db import create_sessionmaker
from backline.factors import totp
from backline.factors.models import MfaChallenge
from tests.accounts.conftest import PASSWORD, bearer, login, outbox
from tests.factors.conftest import (
    LIMITS,
    budget,
    code_now,
    enrol,
    events,
    failures,
    next_step,
    password_step,
    second_step,
)

pytestmark = pytest.mark.usefixtures("clock")


async def enrolled(client: httpx.AsyncClient, make_user: Any) -> tuple[str, list[str]]:
    await make_user()
    return await enrol(client, await login(client, "ann@example.com"))


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def wrong_code(right: str) -> str:
    return f"{(int(right) + 1) % 1_000_000:06d}"


def limited_app(app_factory: Any, make_settings: Any, database_url: str, **limits: str) -> Any:
    """An app whose rate limits are the generous ones but for `limits`."""
    settings = make_settings(
        database_url=database_url, rate_limits={**LIMITS, **limits}, lockout_threshold=20
    )
    return app_factory(settings)


def client_of(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_full_sign_in_with_totp(
    client: httpx.AsyncClient,
    make_user: Any,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    secret, _ = await enrolled(client, make_user)
    next_step(clock)
    first = await password_step(client)
    assert first["methods"] == ["totp", "recovery_code"]
    assert first["expires_in"] == 300
    assert first["enrolment_required"] is False
    assert "access_token" not in first
    assert "refresh_token" not in first
    done = await second_step(client, first["challenge_token"], code=code_now(secret))
    assert done.status_code == 200, done.text
    tokens = done.json()
    me = await client.get("/api/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    opened = await events(engine, "login_ok")
    assert opened[-1].details["factor"] == "totp"
    assert await events(engine, "mfa_challenge_issued")


async def test_a_full_sign_in_with_a_recovery_code_used_once_and_mailed(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    _, codes = await enrolled(client, make_user)
    first = await password_step(client)
    done = await second_step(client, first["challenge_token"], recovery_code=codes[3].upper())
    assert done.status_code == 200, done.text
    assert (await client.get("/api/me", headers=bearer(done.json()))).status_code == 200
    [used] = await events(engine, "recovery_code_used")
    assert used.details == {"remaining": 9}
    [mail] = await outbox(engine, "recovery_code_used")
    assert mail.to_address == "ann@example.com"
    assert "9 unused codes" in (mail.text_body or "")
    assert codes[3] not in (mail.text_body or "")
    again = await password_step(client)
    problem(
        await second_step(client, again["challenge_token"], recovery_code=codes[3]),
        401,
        "recovery_code_used",
    )
    problem(
        await second_step(client, again["challenge_token"], recovery_code="aaaa-bbbb-cccc"),
        401,
        "invalid_recovery_code",
    )
    factors = await client.get("/api/me/factors", headers=bearer(done.json()))
    assert factors.json()["recovery_codes"]["remaining"] == 9


async def test_a_code_is_good_once_even_across_challenges(
    client: httpx.AsyncClient,
    make_user: Any,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    secret, _ = await enrolled(client, make_user)
    next_step(clock)
    code = code_now(secret)
    first = await password_step(client)
    assert (await second_step(client, first["challenge_token"], code=code)).status_code == 200
    other = await password_step(client)
    problem(await second_step(client, other["challenge_token"], code=code), 401, "mfa_code_reused")
    # Audited and counted toward the lockout, as a wrong code is.
    [failed] = await events(engine, "mfa_failed")
    assert failed.details == {"reason": "mfa_code_reused", "tries_left": 4}
    assert [e.details["reason"] for e in await events(engine, "login_failed")] == [
        "mfa_code_reused"
    ]
    assert await failures(engine) == 1
    next_step(clock)
    fresh = await second_step(client, other["challenge_token"], code=code_now(secret))
    assert fresh.status_code == 200, fresh.text


async def test_a_challenge_is_good_once(
    client: httpx.AsyncClient,
    make_user: Any,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    ann = await make_user()
    tokens = await login(client, "ann@example.com")
    secret, codes = await enrol(client, tokens)
    next_step(clock)
    first = await password_step(client)
    done = await second_step(client, first["challenge_token"], code=code_now(secret))
    assert done.status_code == 200
    next_step(clock)
    used = await second_step(client, first["challenge_token"], code=code_now(secret))
    problem(used, 401, "challenge_used")
    again = await second_step(client, first["challenge_token"], recovery_code=codes[0])
    problem(again, 401, "challenge_used")
    # Each refusal is audited, and counted against the second step's rate limit.
    refused = await events(engine, "mfa_challenge_refused")
    assert [e.details for e in refused] == [{"reason": "challenge_used"}] * 2
    assert {e.user_id for e in refused} == {ann.user.id}
    # Compared at one clock reading: across a minute's turn the sliding window reweighs.
    assert budget(again) == budget(used) - 1
    # Nothing was used up by them: the recovery code is still good, the code is not counted.
    assert await failures(engine) == 0
    factors = await client.get("/api/me/factors", headers=bearer(tokens))
    assert factors.json()["recovery_codes"]["remaining"] == 10


async def test_a_challenge_lasts_five_minutes(
    client: httpx.AsyncClient,
    make_user: Any,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    secret, codes = await enrolled(client, make_user)
    first = await password_step(client)
    clock.shift(timedelta(minutes=5, seconds=10))
    late = await second_step(client, first["challenge_token"], code=code_now(secret))
    problem(late, 401, "challenge_expired")
    later = await second_step(client, first["challenge_token"], recovery_code=codes[0])
    problem(later, 401, "challenge_expired")
    refused = await events(engine, "mfa_challenge_refused")
    assert [e.details for e in refused] == [{"reason": "challenge_expired"}] * 2
    assert all(e.user_id is not None for e in refused)
    assert budget(later) == budget(late) - 1  # counted against `mfa_verify`
    assert await failures(engine) == 0
    # The code it carried is still unused: a new challenge takes it.
    again = await password_step(client)
    done = await second_step(client, again["challenge_token"], code=code_now(secret))
    assert done.status_code == 200, done.text


async def test_challenge_and_access_tokens_do_not_stand_in_for_each_other(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    secret, _ = await enrolled(client, make_user)
    first = await password_step(client)
    as_access = await client.get(
        "/api/me", headers={"Authorization": f"Bearer {first['challenge_token']}"}
    )
    problem(as_access, 401, "invalid_token")
    await make_user("bob@example.com", display_name="Bob")
    access = (await login(client, "bob@example.com"))["access_token"]
    problem(await second_step(client, access, code=code_now(secret)), 401, "invalid_challenge")
    problem(await second_step(client, "not.a.token", code="123456"), 401, "invalid_challenge")
    tampered = first["challenge_token"][:-4] + (
        "AAAA" if first["challenge_token"][-4:] != "AAAA" else "BBBB"
    )
    problem(await second_step(client, tampered, code=code_now(secret)), 401, "invalid_challenge")
    refused = await events(engine, "mfa_challenge_refused")
    assert [e.details["reason"] for e in refused] == ["invalid_challenge"] * 3
    # The challenge token presented as an access token is audited too, never the token itself;
    # a tampered one is only refused.
    problem(
        await client.get("/api/me", headers={"Authorization": f"Bearer {tampered}"}),
        401,
        "invalid_token",
    )
    [misused] = await events(engine, "mfa_challenge_misused")
    async with create_sessionmaker(engine)() as session:
        challenge = (await session.scalars(select(MfaChallenge))).one()
    assert misused.user_id == challenge.user_id
    assert misused.details == {"challenge_id": str(challenge.id)}
    assert first["challenge_token"] not in str(misused.details)


async def test_five_wrong_codes_end_the_challenge_and_count_toward_the_lockout(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    secret, _ = await enrolled(client, make_user)
    first = await password_step(client)
    right = code_now(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        problem(
            await second_step(client, first["challenge_token"], code=wrong), 401, "invalid_mfa_code"
        )
    problem(
        await second_step(client, first["challenge_token"], code=right), 401, "challenge_exhausted"
    )
    failed = await events(engine, "login_failed")
    assert [e.details["reason"] for e in failed] == ["invalid_mfa_code"] * 5
    # The clock stands still, so the events' order is the database's: compare them sorted.
    tries_left = sorted(e.details["tries_left"] for e in await events(engine, "mfa_failed"))
    assert tries_left == [0, 1, 2, 3, 4]
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(MfaChallenge))
        assert row is not None
        assert row.attempts == 5
        assert row.consumed_at is None
    # a new challenge still works: the code was never used
    again = await password_step(client)
    assert (await second_step(client, again["challenge_token"], code=right)).status_code == 200


async def test_wrong_codes_lock_the_address_like_wrong_passwords(
    app_factory: Any, make_settings: Any, database_url: str, make_user: Any
) -> None:
    from asgi_lifespan import LifespanManager

    from tests.factors.conftest import LIMITS

    app = app_factory(
        make_settings(database_url=database_url, rate_limits=LIMITS, lockout_threshold=3)
    )
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            secret, _ = await enrolled(client, make_user)
            first = await password_step(client)
            right = code_now(secret)
            wrong = f"{(int(right) + 1) % 1_000_000:06d}"
            for _ in range(3):
                await second_step(client, first["challenge_token"], code=wrong)
            locked = await second_step(client, first["challenge_token"], code=right)
            problem(locked, 429, "account_locked")
            assert int(locked.headers["Retry-After"]) > 0
            problem(
                await client.post(
                    "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
                ),
                429,
                "account_locked",
            )


@pytest.mark.usefixtures("one_window")
async def test_a_challenge_token_used_as_an_access_token_counts_against_mfa_verify(
    app_factory: Any, make_settings: Any, database_url: str, make_user: Any, engine: AsyncEngine
) -> None:
    app = limited_app(app_factory, make_settings, database_url, mfa_verify="2/minute")
    async with LifespanManager(app), client_of(app) as client:
        ann = await make_user()
        tokens = await login(client, "ann@example.com")
        secret, _ = await enrol(client, tokens)
        for _ in range(3):  # a valid access token is not counted
            me = await client.get("/api/me", headers=bearer(tokens))
            assert me.status_code == 200
            assert "mfa_verify" not in me.headers.get("RateLimit", "")
        token = (await password_step(client))["challenge_token"]
        by_header = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        problem(by_header, 401, "invalid_token")
        assert budget(by_header) == 1
        by_cookie = await client.get("/api/me", headers={"Cookie": f"backline_access={token}"})
        problem(by_cookie, 401, "invalid_token")
        assert budget(by_cookie) == 0
        spent = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        problem(spent, 429, "rate_limited")
        assert int(spent.headers["Retry-After"]) > 0
        # The second step shares the budget the misuse spent.
        problem(await second_step(client, token, code=code_now(secret)), 429, "rate_limited")
        misused = await events(engine, "mfa_challenge_misused")
        assert len(misused) == 2  # the third, refused by the limit, wrote nothing
        assert {e.user_id for e in misused} == {ann.user.id}
        assert all(token not in str(e.details) for e in misused)


@pytest.mark.usefixtures("one_window")
async def test_the_second_step_answers_429_past_its_limit(
    app_factory: Any, make_settings: Any, database_url: str, make_user: Any, engine: AsyncEngine
) -> None:
    app = limited_app(app_factory, make_settings, database_url, mfa_verify="3/minute")
    async with LifespanManager(app), client_of(app) as client:
        secret, _ = await enrolled(client, make_user)
        token = (await password_step(client))["challenge_token"]
        right = code_now(secret)
        for left in (2, 1, 0):
            answer = await second_step(client, token, code=wrong_code(right))
            problem(answer, 401, "invalid_mfa_code")
            assert budget(answer) == left
        refused = await second_step(client, token, code=right)
        problem(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["RateLimit-Policy"] == '"mfa_verify";q=3;w=60'
        # Refused before the challenge was read: three tries counted, the right code unused.
        async with create_sessionmaker(engine)() as session:
            row = (await session.scalars(select(MfaChallenge))).one()
            assert (row.attempts, row.consumed_at) == (3, None)
        assert len(await events(engine, "mfa_failed")) == 3
        assert await failures(engine) == 3


async def test_a_code_from_another_account_is_refused(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await enrolled(client, make_user)
    bob = await make_user("bob@example.com", display_name="Bob")
    bob_secret, _ = await enrol(client, await login(client, "bob@example.com"))
    first = await password_step(client)
    problem(
        await second_step(client, first["challenge_token"], code=code_now(bob_secret)),
        401,
        "invalid_mfa_code",
    )
    # Ann's sign-in failed: audited and counted for her; Bob's account is untouched.
    [failed] = await events(engine, "mfa_failed")
    assert failed.details == {"reason": "invalid_mfa_code", "tries_left": 4}
    assert failed.user_id != bob.user.id
    [counted] = await events(engine, "login_failed")
    assert (counted.user_id, counted.details) == (failed.user_id, {"reason": "invalid_mfa_code"})
    assert await failures(engine) == 1
    assert await failures(engine, "bob@example.com") == 0
    bob_first = await password_step(client, "bob@example.com")
    bob_done = await second_step(client, bob_first["challenge_token"], code=code_now(bob_secret))
    assert bob_done.status_code == 200, bob_done.text  # his code was not used up


async def test_a_code_from_a_past_window_is_refused_counted_and_audited(
    client: httpx.AsyncClient,
    make_user: Any,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    secret, _ = await enrolled(client, make_user)
    first = await password_step(client)
    old = code_now(secret)  # never used: enrolment took the step before
    clock.shift(timedelta(seconds=2 * totp.STEP_SECONDS))  # past the one step of drift allowed
    expired = await second_step(client, first["challenge_token"], code=old)
    problem(expired, 401, "invalid_mfa_code")
    [failed] = await events(engine, "mfa_failed")
    assert failed.details == {"reason": "invalid_mfa_code", "tries_left": 4}
    assert [e.details["reason"] for e in await events(engine, "login_failed")] == [
        "invalid_mfa_code"
    ]
    assert await failures(engine) == 1
    done = await second_step(client, first["challenge_token"], code=code_now(secret))
    assert done.status_code == 200, done.text
    assert await failures(engine) == 0  # the completed sign-in clears the count


async def test_the_second_step_needs_exactly_one_code(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    secret, codes = await enrolled(client, make_user)
    first = await password_step(client)
    both = await second_step(
        client, first["challenge_token"], code=code_now(secret), recovery_code=codes[0]
    )
    problem(both, 422, "validation_failed")
    problem(await second_step(client, first["challenge_token"]), 422, "validation_failed")


async def test_browser_mode_sets_the_cookies_after_the_second_step(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    secret, _ = await enrolled(client, make_user)
    first = await password_step(client, mode="cookie")
    done = await client.post(
        "/api/auth/mfa/verify",
        json={
            "challenge_token": first["challenge_token"],
            "code": code_now(secret),
            "mode": "cookie",
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["access_token"] is None
    assert done.json()["csrf_token"]
    assert {"backline_access", "backline_refresh", "backline_csrf"} <= set(done.cookies)


async def test_accounts_without_a_factor_sign_in_in_one_step(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    assert tokens["access_token"]
    assert "mfa_required" not in tokens


async def test_a_password_change_voids_the_challenges_before_it(
    client: httpx.AsyncClient,
    make_user: Any,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    secret, _ = await enrolled(client, make_user)
    first = await password_step(client)
    clock.shift(timedelta(seconds=2))
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(update(User).values(password_changed_at=now()))
    problem(
        await second_step(client, first["challenge_token"], code=code_now(secret)),
        401,
        "invalid_challenge",
    )
