"""Revocation reaches every app process within a second."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.accounts import service as accounts
from backline.app import Backline
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.models import metadata
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD, bearer, login, outbox, token_in
from tests.conftest import free_port

KEY = "a-shared-signing-key-for-both-processes-0123456789"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, secret_key=KEY, rate_limits=GENEROUS_LIMITS)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
async def test_a_reset_on_one_process_is_refused_by_another_within_a_second(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    postgres_url: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    shared = make_settings(
        database_url=postgres_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        secret_key=KEY,
        rate_limits=GENEROUS_LIMITS,
    )
    pg = create_engine(shared)
    async with create_sessionmaker(pg)() as session, session.begin():
        await accounts.create(
            session, email="multi@example.com", password=PASSWORD, display_name="M", verified=True
        )
    port = free_port()
    other = subprocess.Popen(  # noqa: ASYNC220 - starting a process does not block
        [sys.executable, "-m", "backline", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={
            **os.environ,
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": postgres_url,
            "BACKLINE_REDIS_URL": redis_url,
            "BACKLINE_REDIS_PREFIX": redis_prefix,
            "BACKLINE_SECRET_KEY": KEY,
            "BACKLINE_LOG_LEVEL": "WARNING",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app = app_factory(shared)
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as here,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as there,
        ):
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await there.get("/healthz")).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the second process did not start"
                await asyncio.sleep(0.1)
            tokens = await login(here, "multi@example.com")
            assert (await there.get("/api/me", headers=bearer(tokens))).status_code == 200

            await here.post("/api/auth/forgot-password", json={"email": "multi@example.com"})
            token = token_in((await outbox(pg, "password_reset"))[0])
            reset = await here.post(
                "/api/auth/reset-password",
                json={"token": token, "new_password": "a new and long passphrase"},
            )
            assert reset.status_code == 204
            began = time.monotonic()
            refused = await there.get("/api/me", headers=bearer(tokens))
            assert refused.status_code == 401
            assert refused.json()["code"] == "session_revoked"
            assert time.monotonic() - began < 1.0
    finally:
        other.terminate()
        other.wait(timeout=15)
        async with pg.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                await connection.execute(table.delete())
        await pg.dispose()


async def test_without_redis_another_process_stops_accepting_within_a_second(
    app_factory: Callable[[Settings], Backline], settings: Settings, make_user: Any
) -> None:
    """Two app instances on one database, no Redis: the cache is at most one second stale."""
    await make_user()
    first, second = app_factory(settings), app_factory(settings)
    async with (
        LifespanManager(first),
        LifespanManager(second),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
    ):
        tokens = await login(a, "ann@example.com")
        assert (await b.get("/api/me", headers=bearer(tokens))).status_code == 200  # cached
        assert (await a.post("/api/auth/logout", headers=bearer(tokens))).status_code == 204
        began = time.monotonic()
        while (await b.get("/api/me", headers=bearer(tokens))).status_code == 200:
            assert time.monotonic() - began < 1.2, "still accepted after a second"
            await asyncio.sleep(0.05)
        assert time.monotonic() - began <= 1.2


@pytest.mark.redis
async def test_a_revocation_that_cannot_be_published_fails_and_changes_nothing(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    own_redis: Any,
    make_user: Any,
) -> None:
    settings = make_settings(
        database_url=database_url, redis_url=own_redis.url, rate_limits=GENEROUS_LIMITS
    )
    await make_user()
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client,
    ):
        tokens = await login(client, "ann@example.com")
        own_redis.stop()
        out = await client.post("/api/auth/logout", headers=bearer(tokens))
        assert out.status_code == 503
        assert out.json()["code"] == "revocation_unavailable"
        own_redis.start()
        listed = await client.get("/api/auth/sessions", headers=bearer(tokens))
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 1  # the session was not half-revoked
        assert (await client.post("/api/auth/logout", headers=bearer(tokens))).status_code == 204
        assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 401


@pytest.mark.redis
async def test_a_session_ended_before_redis_lost_its_data_stays_ended(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    own_redis: Any,
    make_user: Any,
    logs: Any,
) -> None:
    settings = make_settings(
        database_url=database_url, redis_url=own_redis.url, rate_limits=GENEROUS_LIMITS
    )
    await make_user()
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client,
    ):
        ended, kept = await login(client, "ann@example.com"), await login(client, "ann@example.com")
        # The first check finds the new server without its markers and restores them (none
        # yet) in the background: let that end before the session does, so it counts none.
        assert (await client.get("/api/me", headers=bearer(kept))).status_code == 200
        for _ in range(100):
            if logs.named("revocations_restored"):
                break
            await asyncio.sleep(0.02)
        assert (await client.post("/api/auth/logout", headers=bearer(ended))).status_code == 204
        own_redis.stop()
        own_redis.start()  # empty: no persistence
        for _ in range(3):  # the database answers, then the markers are written again
            assert (await client.get("/api/me", headers=bearer(ended))).status_code == 401
            assert (await client.get("/api/me", headers=bearer(kept))).status_code == 200
            await asyncio.sleep(0.2)
        # Once for the new server at the first check, once after the loss: the ended session.
        assert [e["sessions"] for e in logs.named("revocations_restored")] == [0, 1]
