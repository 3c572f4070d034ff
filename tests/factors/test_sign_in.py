"""Signing in with a second factor over the API: the challenge, TOTP, recovery codes, and every
way a second step is refused (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.accounts.tokens import now
from backline.audit.models import AuditEvent
from backline.db import create_sessionmaker
from backline.factors.models import MfaChallenge
from tests.accounts.conftest import PASSWORD, bearer, login, outbox
from tests.factors.conftest import code_now, enrol, next_step, password_step, second_step

pytestmark = pytest.mark.usefixtures("clock")


async def events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.event == name))
        return list(rows.all())


async def enrolled(client: httpx.AsyncClient, make_user: Any) -> tuple[str, list[str]]:
    await make_user()
    return await enrol(client, await login(client, "ann@example.com"))


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


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
    client: httpx.AsyncClient, make_user: Any, clock: time_machine.Coordinates
) -> None:
    secret, _ = await enrolled(client, make_user)
    next_step(clock)
    code = code_now(secret)
    first = await password_step(client)
    assert (await second_step(client, first["challenge_token"], code=code)).status_code == 200
    other = await password_step(client)
    problem(await second_step(client, other["challenge_token"], code=code), 401, "mfa_code_reused")
    next_step(clock)
    fresh = await second_step(client, other["challenge_token"], code=code_now(secret))
    assert fresh.status_code == 200, fresh.text


async def test_a_challenge_is_good_once(
    client: httpx.AsyncClient, make_user: Any, clock: time_machine.Coordinates
) -> None:
    secret, _ = await enrolled(client, make_user)
    next_step(clock)
    first = await password_step(client)
    assert (
        await second_step(client, first["challenge_token"], code=code_now(secret))
    ).status_code == 200
    next_step(clock)
    problem(
        await second_step(client, first["challenge_token"], code=code_now(secret)),
        401,
        "challenge_used",
    )


async def test_a_challenge_lasts_five_minutes(
    client: httpx.AsyncClient, make_user: Any, clock: time_machine.Coordinates
) -> None:
    secret, _ = await enrolled(client, make_user)
    first = await password_step(client)
    clock.shift(timedelta(minutes=5, seconds=10))
    problem(
        await second_step(client, first["challenge_token"], code=code_now(secret)),
        401,
        "challenge_expired",
    )


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


async def test_a_code_from_another_account_is_refused(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await enrolled(client, make_user)
    await make_user("bob@example.com", display_name="Bob")
    bob_secret, _ = await enrol(client, await login(client, "bob@example.com"))
    first = await password_step(client)
    problem(
        await second_step(client, first["challenge_token"], code=code_now(bob_secret)),
        401,
        "invalid_mfa_code",
    )


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
