"""Open sessions per account are capped (least recently used ended first) and listed in pages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import sessions as open_sessions_service
from backline.accounts.models import AuthSession
from backline.accounts.revocation import Revocations
from backline.app import Backline
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import create_sessionmaker
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS, max_sessions=3)


async def refresh(client: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


async def open_sessions(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.revoked_at.is_(None))
        )
    return int(count or 0)


async def assert_capped(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    first = await login(client, "ann@example.com")
    second = await login(client, "ann@example.com")
    third = await login(client, "ann@example.com")
    used = await refresh(client, first)  # the first is now the most recently used
    assert used.status_code == 200
    first = used.json()
    fourth = await login(client, "ann@example.com")  # one too many: the second goes

    refused = await client.get("/api/me", headers=bearer(second))
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"
    assert (await refresh(client, second)).status_code == 401
    for kept in (first, third, fourth):
        assert (await client.get("/api/me", headers=bearer(kept))).status_code == 200
    assert await open_sessions(engine) == 3

    async with create_sessionmaker(engine)() as session:
        [event] = (
            await session.scalars(select(AuditEvent).where(AuditEvent.event == "sessions_capped"))
        ).all()
        ended = await session.get(AuthSession, uuid.UUID(session_of(second)))
    assert ended is not None
    assert ended.revoked_reason == "session_limit"
    assert event.details["sessions_ended"] == [session_of(second)]
    assert event.details["session_id"] == session_of(fourth)


def session_of(tokens: dict[str, Any]) -> str:
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    return str(claims["sid"])


async def test_a_sign_in_past_the_cap_ends_the_least_recently_used_session(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user()
    await assert_capped(client, engine)


async def test_many_sign_ins_leave_only_the_cap_open(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user()
    await make_user("bob@example.com", display_name="Bob")
    bob = await login(client, "bob@example.com")
    last = [await login(client, "ann@example.com") for _ in range(8)][-3:]
    assert await open_sessions(engine) == 3 + 1  # Ann's three, and Bob's own untouched
    for tokens in [*last, bob]:
        assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200


@pytest.mark.redis
async def test_the_ended_sessions_are_refused_on_every_process_through_redis(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
    make_user: Any,
    engine: AsyncEngine,
) -> None:
    settings = make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        max_sessions=3,
        redis_url=redis_url,
    )
    await make_user()
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        await assert_capped(client, engine)


async def test_sessions_are_listed_in_pages_newest_first(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
) -> None:
    await make_user()
    settings = make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        made = [session_of(await login(client, "ann@example.com")) for _ in range(5)]
        me = bearer(await login(client, "ann@example.com"))
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(10):  # bounded: three pages are expected
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/api/auth/sessions", headers=me, params=params)
            assert response.status_code == 200
            page = response.json()
            assert set(page) == {"items", "next_cursor"}
            assert len(page["items"]) <= 2
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bad = await client.get("/api/auth/sessions", headers=me, params={"cursor": "bm9wZQ"})
        too_many = await client.get("/api/auth/sessions", headers=me, params={"limit": 1000})
    assert len(seen) == 6
    assert [s["id"] for s in seen[1:]] == list(reversed(made))
    assert seen[0]["current"]
    assert not any(s["current"] for s in seen[1:])
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    assert too_many.status_code == 422


@pytest.mark.parametrize("database_server", ["postgres"], indirect=True)
async def test_caps_run_at_once_on_one_account_neither_wait_nor_deadlock(
    engine: AsyncEngine, make_user: Any, settings: Settings
) -> None:
    """Eight sign-ins at once on an account with 100 open sessions, each capping them while
    keeping its own new one: each waiting on the others' row locks, PostgreSQL found
    deadlocks among them."""
    account = await make_user()
    revocations = Revocations(settings, None, create_sessionmaker(engine))
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def opened(count: int, age: int = 0) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(count)]
        start = datetime.now(UTC) - timedelta(minutes=age)
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add_all(
                AuthSession(
                    id=session_id,
                    user_id=account.user.id,
                    last_used_at=start - timedelta(seconds=n),
                    expires_at=start + timedelta(days=1),
                )
                for n, session_id in enumerate(ids)
            )
        return ids

    async def cap(kept: uuid.UUID) -> list[uuid.UUID]:
        async with autocommit.connect() as connection:
            return await open_sessions_service.cap(
                connection,
                revocations=revocations,
                user_id=account.user.id,
                session_id=kept,
                limit=3,
                client=ClientInfo("127.0.0.1", None),
            )

    await opened(100, age=10)
    for _ in range(12):  # bounded rounds: a deadlock needs the plans to meet
        await asyncio.gather(*(cap(kept) for kept in await opened(8)))
    [last] = await opened(1)
    await cap(last)
    assert await open_sessions(engine) == 3
    await revocations.aclose()
