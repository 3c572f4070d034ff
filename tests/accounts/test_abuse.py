"""Abuse resistance: concurrent guessing, lockout without enumeration, limits, timing."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.app import Backline
from backline.config import Settings
from backline.db import create_sessionmaker
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD, bearer, login, outbox, token_in


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def wrong_login(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": "bad guess!!"})


async def test_concurrent_guesses_are_all_counted(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    answers = await asyncio.gather(*(wrong_login(client, "ann@example.com") for _ in range(20)))
    assert {a.status_code for a in answers} <= {401, 429}
    locked = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"


async def test_unknown_addresses_pause_exactly_like_real_ones(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("real@example.com")
    real = [(await wrong_login(client, "real@example.com")) for _ in range(6)]
    ghost = [(await wrong_login(client, "ghost@example.com")) for _ in range(6)]
    assert [r.status_code for r in real] == [r.status_code for r in ghost] == [401] * 5 + [429]
    assert real[-1].headers["retry-after"] == ghost[-1].headers["retry-after"]
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(real[-1]) == strip(ghost[-1])


async def test_a_stolen_token_cannot_guess_the_password(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    statuses = []
    for _ in range(6):
        response = await client.post(
            "/api/auth/change-password",
            json={"current_password": "guess guess", "new_password": "whatever new pass 1"},
            headers=bearer(tokens),
        )
        statuses.append(response.status_code)
    assert statuses == [403] * 5 + [429]
    deleting = await client.request(
        "DELETE", "/api/me", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert deleting.status_code == 429  # even the right password waits out the pause


async def test_a_reset_cancels_a_pending_email_change(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    intruder = await login(client, "ann@example.com")  # someone who knows the password
    await client.patch(
        "/api/me",
        json={"email": "mallory@evil.example", "current_password": PASSWORD},
        headers=bearer(intruder),
    )
    [link] = await outbox(engine, "verify_email")
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    token = token_in((await outbox(engine, "password_reset"))[0])
    reset = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": "owner's new passphrase"}
    )
    assert reset.status_code == 204
    hijack = await client.post("/api/auth/verify-email", json={"token": token_in(link)})
    assert hijack.status_code == 400
    assert (await login(client, "ann@example.com", "owner's new passphrase"))["access_token"]


async def test_email_change_does_not_reveal_taken_addresses(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    await make_user("bob@example.com", display_name="Bob")
    tokens = await login(client, "ann@example.com")
    answers = [
        await client.patch(
            "/api/me", json={"email": email, "current_password": PASSWORD}, headers=bearer(tokens)
        )
        for email in ("bob@example.com", "free@example.com")
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert [m.to_address for m in await outbox(engine, "verify_email")] == ["free@example.com"]


@pytest.fixture
def strict_settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    strict = {"forgot_password", "email_change"}  # these run on their defaults
    limits = {k: v for k, v in GENEROUS_LIMITS.items() if k not in strict}
    return make_settings(database_url=database_url, rate_limits=limits)


@pytest.fixture
async def strict(
    app_factory: Callable[[Settings], Backline], strict_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    # The sliding-window counter weighs the previous window: a run that straddles the top of
    # the hour would see five requests counted as 4.99. Run from the middle of an hour.
    middle = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    app = app_factory(strict_settings)
    with time_machine.travel(middle, tick=True):
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client,
        ):
            yield client


async def test_forgot_password_is_five_per_hour_per_address_however_spelled(
    strict: httpx.AsyncClient,
) -> None:
    spellings = [
        "ann@example.com",
        "ANN@example.com",
        " ann@EXAMPLE.com",
        "ann@\uff45xample.com",
        "ann@ex\uff41mple.com",
        "Ann@Example.Com",
    ]
    statuses = [
        (await strict.post("/api/auth/forgot-password", json={"email": email})).status_code
        for email in spellings
    ]
    assert statuses == [202] * 5 + [429]


async def test_forgot_password_is_five_per_hour_per_client_address(
    strict: httpx.AsyncClient,
) -> None:
    statuses = [
        (
            await strict.post("/api/auth/forgot-password", json={"email": f"u{i}@example.com"})
        ).status_code
        for i in range(6)
    ]
    assert statuses == [202] * 5 + [429]


@pytest.mark.slow
async def test_forgot_password_takes_as_long_for_unknown_addresses(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()

    async def timed(email: str) -> float:
        began = time.perf_counter()
        response = await client.post("/api/auth/forgot-password", json={"email": email})
        assert response.status_code == 202
        return time.perf_counter() - began

    known, unknown = [], []
    for i in range(8):
        known.append(await timed("ann@example.com"))
        unknown.append(await timed(f"nobody{i}@example.com"))
    assert min(known + unknown) >= 0.25
    assert abs(statistics.median(known) - statistics.median(unknown)) < 0.01


async def test_concurrent_registrations_of_one_address_answer_alike(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    spellings = ("twin@example.com", "Twin@example.com", "TWIN@EXAMPLE.COM")
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/auth/register",
                json={"email": email, "password": PASSWORD, "display_name": "Twin"},
            )
            for email in spellings
        )
    )
    assert [a.status_code for a in answers] == [202, 202, 202]
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(User)
            .where(func.lower(User.email) == "twin@example.com")
        )
    assert rows == 1


async def test_hostile_audit_queries_are_4xx(client: httpx.AsyncClient, make_user: Any) -> None:
    import base64

    from backline.accounts.models import Role

    await make_user("admin@example.com", role=Role.ADMIN, display_name="Admin")
    admin = await login(client, "admin@example.com")
    naive = base64.urlsafe_b64encode(b"2024-01-01T00:00:00|00000000-0000-4000-8000-000000000000")
    for params in ({"cursor": naive.decode()}, {"event": "login\x00"}, {"event": "x" * 100}):
        response = await client.get("/api/admin/audit-events", params=params, headers=bearer(admin))
        assert 400 <= response.status_code < 500, params
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_nul_in_a_form_field_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/reset-password",
        data={"token": "t", "new_password": "nul\x00inside1", "confirm_password": "nul\x00inside1"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "nul_character"


async def test_email_changes_are_five_an_hour_per_account_and_per_new_address(
    strict: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    for name in ("ann", "bob", "cat"):
        await make_user(f"{name}@example.com", display_name=name.title())
    ann, bob, cat = [await login(strict, f"{n}@example.com") for n in ("ann", "bob", "cat")]

    async def change(tokens: dict[str, Any], email: str) -> httpx.Response:
        return await strict.patch(
            "/api/me", json={"email": email, "current_password": PASSWORD}, headers=bearer(tokens)
        )

    statuses = [(await change(ann, f"new{i}@example.com")).status_code for i in range(5)]
    assert statuses == [200] * 5
    queued = len(await outbox(engine))
    assert queued == 10  # each: a link to the new address, a notice to the old one
    refused = await change(ann, "new9@example.com")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["retry-after"]
    assert len(await outbox(engine)) == queued

    # However many accounts ask, one stranger's inbox gets five links an hour.
    assert [(await change(bob, "stranger@example.com")).status_code for _ in range(5)] == [200] * 5
    queued = len(await outbox(engine))
    refused = await change(cat, "Stranger@Example.com")
    assert refused.status_code == 429
    assert len(await outbox(engine)) == queued
    assert [m.to_address for m in await outbox(engine, "verify_email")].count(
        "stranger@example.com"
    ) == 5
    renamed = await strict.patch("/api/me", json={"display_name": "Ann L"}, headers=bearer(ann))
    assert renamed.status_code == 200  # a rename is not an email change
