"""Refresh rotation and reuse, sessions, logout, immediate revocation, reset and change."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import service as accounts
from backline.db import create_engine, create_sessionmaker, utcnow
from backline.models import metadata
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD, bearer, login, outbox, token_in

NEW_PASSWORD = "another fine passphrase 7"


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_a_reused_token_ends_the_session(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    first = await login(client, "ann@example.com")
    rotated = await refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/api/me", headers=bearer(second))).status_code == 200

    with time_machine.travel(utcnow() + timedelta(seconds=11), tick=False):
        replay = await refresh(client, first["refresh_token"])  # stolen and replayed
        assert replay.status_code == 401
        assert replay.json()["code"] == "refresh_token_reused"
        # The whole family is gone: the legitimate successor and its access tokens too.
        assert (await refresh(client, second["refresh_token"])).status_code == 401
        revoked = await client.get("/api/me", headers=bearer(second))
        assert revoked.status_code == 401
        assert revoked.json()["code"] == "session_revoked"


async def test_concurrent_refreshes_within_the_grace_window_get_the_same_successor(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    one, two = await asyncio.gather(
        refresh(client, tokens["refresh_token"]), refresh(client, tokens["refresh_token"])
    )
    assert one.status_code == two.status_code == 200
    assert one.json()["refresh_token"] == two.json()["refresh_token"]
    follow = await refresh(client, one.json()["refresh_token"])
    assert follow.status_code == 200


async def test_sessions_end_after_thirty_days_however_often_refreshed(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    moment = utcnow()
    token = tokens["refresh_token"]
    with time_machine.travel(moment, tick=False) as clock:
        for _ in range(3):  # every ten days, well within the idle limit
            clock.shift(timedelta(days=10) - timedelta(minutes=1))
            response = await refresh(client, token)
            assert response.status_code == 200
            token = response.json()["refresh_token"]
        clock.shift(timedelta(days=1))
        expired = await refresh(client, token)
    assert expired.status_code == 401
    assert expired.json()["code"] == "invalid_refresh_token"


async def test_an_idle_session_ends(client: httpx.AsyncClient, make_user: Any) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    with time_machine.travel(utcnow() + timedelta(days=15), tick=False):
        assert (await refresh(client, tokens["refresh_token"])).status_code == 401


@pytest.mark.parametrize("token", ["", "x" * 43, "not-a-token", "a" * 200])
async def test_garbage_refresh_tokens_are_401_or_422(client: httpx.AsyncClient, token: str) -> None:
    response = await refresh(client, token)
    assert response.status_code in (401, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_sessions_are_listed_and_revoked_one_by_one(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    laptop = await login(client, "ann@example.com")
    phone = await login(client, "ann@example.com")
    listed = (await client.get("/api/auth/sessions", headers=bearer(laptop))).json()["items"]
    assert len(listed) == 2
    [current] = [s for s in listed if s["current"]]
    other = next(s for s in listed if not s["current"])
    assert current["ip"] == "203.0.113.7"

    gone = await client.delete(f"/api/auth/sessions/{other['id']}", headers=bearer(laptop))
    assert gone.status_code == 204
    assert (await client.get("/api/me", headers=bearer(phone))).status_code == 401
    assert (await client.get("/api/me", headers=bearer(laptop))).status_code == 200
    assert (await refresh(client, phone["refresh_token"])).status_code == 401


async def test_another_users_session_is_404(client: httpx.AsyncClient, make_user: Any) -> None:
    await make_user("ann@example.com")
    await make_user("bob@example.com", display_name="Bob")
    ann = await login(client, "ann@example.com")
    bob = await login(client, "bob@example.com")
    bobs = (await client.get("/api/auth/sessions", headers=bearer(bob))).json()["items"][0]["id"]
    response = await client.delete(f"/api/auth/sessions/{bobs}", headers=bearer(ann))
    assert response.status_code == 404
    assert (await client.get("/api/me", headers=bearer(bob))).status_code == 200


async def test_logout_and_logout_everywhere(client: httpx.AsyncClient, make_user: Any) -> None:
    await make_user()
    one = await login(client, "ann@example.com")
    two = await login(client, "ann@example.com")
    three = await login(client, "ann@example.com")
    assert (await client.post("/api/auth/logout", headers=bearer(one))).status_code == 204
    assert (await client.get("/api/me", headers=bearer(one))).status_code == 401
    assert (await client.get("/api/me", headers=bearer(two))).status_code == 200
    assert (await client.post("/api/auth/logout-all", headers=bearer(two))).status_code == 204
    for tokens in (two, three):
        assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 401
        assert (await refresh(client, tokens["refresh_token"])).status_code == 401


async def test_password_reset_flow(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    signed_in = await login(client, "ann@example.com")
    known = await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    unknown = await client.post("/api/auth/forgot-password", json={"email": "zed@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    [message] = await outbox(engine, "password_reset")
    assert "http://127.0.0.1:8000/reset-password?token=" in (message.text_body or "")
    token = token_in(message)

    reset = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    assert reset.content == b""  # a reset does not sign in
    assert (await client.get("/api/me", headers=bearer(signed_in))).status_code == 401
    assert (await refresh(client, signed_in["refresh_token"])).status_code == 401
    old = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401
    assert (await login(client, "ann@example.com", NEW_PASSWORD))["access_token"]
    assert len(await outbox(engine, "password_changed")) == 1
    again = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": "yet another pass 9"}
    )
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_token"


async def test_reset_links_expire_after_an_hour_and_a_new_one_voids_the_old(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    first = token_in((await outbox(engine, "password_reset"))[0])
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    second = token_in((await outbox(engine, "password_reset"))[1])
    voided = await client.post(
        "/api/auth/reset-password", json={"token": first, "new_password": NEW_PASSWORD}
    )
    assert voided.status_code == 400
    with time_machine.travel(utcnow() + timedelta(minutes=61), tick=False):
        late = await client.post(
            "/api/auth/reset-password", json={"token": second, "new_password": NEW_PASSWORD}
        )
    assert late.status_code == 400
    assert late.json()["code"] == "invalid_token"


async def test_change_password_keeps_this_session_and_ends_the_others(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    here = await login(client, "ann@example.com")
    elsewhere = await login(client, "ann@example.com")
    wrong = await client.post(
        "/api/auth/change-password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=bearer(here),
    )
    assert wrong.status_code == 403
    changed = await client.post(
        "/api/auth/change-password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(here),
    )
    assert changed.status_code == 200
    assert changed.json() == {"other_sessions_ended": 1}
    assert (await client.get("/api/me", headers=bearer(here))).status_code == 200
    assert (await client.get("/api/me", headers=bearer(elsewhere))).status_code == 401
    assert len(await outbox(engine, "password_changed")) == 1


async def test_links_ignore_the_request_host(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    await client.post(
        "/api/auth/forgot-password",
        json={"email": "ann@example.com"},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    [message] = await outbox(engine, "password_reset")
    assert "evil.example" not in (message.text_body or "") + (message.html_body or "")
    assert "http://127.0.0.1:8000/reset-password?token=" in (message.text_body or "")


@pytest.mark.postgres
async def test_two_instances_refreshing_one_token_agree_through_the_row_lock(
    app_factory: Any, make_settings: Any, postgres_url: str
) -> None:
    """Separate app instances share no in-process lock: PostgreSQL's FOR UPDATE serializes."""
    settings = make_settings(database_url=postgres_url, rate_limits=GENEROUS_LIMITS)
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        await accounts.create(
            session, email="rows@example.com", password=PASSWORD, display_name="R", verified=True
        )
    first, second = app_factory(settings), app_factory(settings)
    try:
        async with (
            LifespanManager(first),
            LifespanManager(second),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
        ):
            tokens = await login(a, "rows@example.com")
            one, two = await asyncio.gather(
                refresh(a, tokens["refresh_token"]), refresh(b, tokens["refresh_token"])
            )
        assert one.status_code == two.status_code == 200
        assert one.json()["refresh_token"] == two.json()["refresh_token"]
    finally:
        async with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                await connection.execute(table.delete())
        await engine.dispose()
