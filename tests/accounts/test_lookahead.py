"""A signed-in request asks Redis its global limit and its revocation check in one write."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from backline.pipelining import Pipeliner
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login

pytestmark = pytest.mark.redis


@asynccontextmanager
async def _served(
    app_factory: Callable[[Settings], Backline], settings: Settings
) -> AsyncIterator[tuple[Backline, httpx.AsyncClient]]:
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def _writes(app: Backline) -> int:
    pipeliners: dict[int, Pipeliner] = {}
    for pipeliner in (app.state.ratelimiter.pipeliner, app.state.revocations.pipeliner):
        assert pipeliner is not None
        pipeliners[id(pipeliner)] = pipeliner
    return sum(p.batches for p in pipeliners.values())


@pytest.fixture
def redis_settings(
    make_settings: Callable[..., Settings], database_url: str, redis_url: str, redis_prefix: str
) -> Settings:
    return make_settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        rate_limits=GENEROUS_LIMITS,
    )


async def test_a_signed_in_read_costs_one_write_to_redis(
    app_factory: Callable[[Settings], Backline], redis_settings: Settings, make_user: Any
) -> None:
    async with _served(app_factory, redis_settings) as (app, client):
        await make_user("ann@example.com")
        who = bearer(await login(client, "ann@example.com"))
        assert app.state.revocations.pipeliner is app.state.ratelimiter.pipeliner
        before = _writes(app)
        response = await client.get("/api/me", headers=who)
        assert response.status_code == 200
        assert _writes(app) - before == 1


async def test_a_session_revoked_is_refused_whoever_asked_first(
    app_factory: Callable[[Settings], Backline], redis_settings: Settings, make_user: Any
) -> None:
    async with _served(app_factory, redis_settings) as (_, client):
        await make_user("bob@example.com")
        who = bearer(await login(client, "bob@example.com"))
        assert (await client.get("/api/me", headers=who)).status_code == 200
        assert (await client.post("/api/auth/logout", headers=who)).status_code == 204
        refused = await client.get("/api/me", headers=who)
        assert refused.status_code == 401
        assert refused.json()["code"] == "session_revoked"
        garbled = await client.get("/api/me", headers={"Authorization": "Bearer not-a-token"})
        assert garbled.json()["code"] == "invalid_token"
        wrong = await client.get("/api/me", headers={"Authorization": "Basic abc"})
        assert wrong.json()["code"] == "invalid_token"


@pytest.mark.usefixtures("one_window")
async def test_a_request_over_the_global_limit_is_refused_before_its_sign_in(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    make_user: Any,
) -> None:
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        rate_limits={**GENEROUS_LIMITS, "global": "4/minute"},
    )
    async with _served(app_factory, settings) as (_, client):
        await make_user("cy@example.com")
        who = bearer(await login(client, "cy@example.com"))
        answers = [(await client.get("/api/me", headers=who)).status_code for _ in range(5)]
        assert answers[-1] == 429
        assert (
            await client.get("/api/me", headers={"Authorization": "Bearer x"})
        ).status_code == 429


async def test_a_different_server_keeps_its_own_pipeliner(redis_url: str) -> None:
    from redis.asyncio import Redis

    here = Redis.from_url(redis_url)
    other_db = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5")
    pipeliner = Pipeliner(here)
    try:
        assert pipeliner.serves(Redis.from_url(redis_url))
        assert not pipeliner.serves(other_db)
        assert not pipeliner.serves(object())
    finally:
        await pipeliner.aclose()
        await here.aclose()
        await other_db.aclose()
