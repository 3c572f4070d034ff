"""Redis stopped under a served Backline, then started again: each rate-limit policy does what
the README's table says (credential policies refuse with 503, the others let requests through
uncounted), revocation falls back to the database, and everything recovers with no restart.

The Redis server is the test's own (`own_redis`: a private `redis-server --save ''`), killed
and started again on the same port, empty, as after a crash of a Redis without persistence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backline.accounts.models import Role
from backline.ratelimit.policies import DEFAULTS
from tests.chat.upstream import Upstream, serve
from tests.conftest import DEFAULT_PASSWORD, OwnRedis, free_port
from tests.resilience.conftest import SECRET, add_account, is_problem, log_events, sign_in
from tests.served import Served, served
from tests.tracks.conftest import wav

pytestmark = [pytest.mark.slow]

NEW_PASSWORD = "another long passphrase 42"


def refused_while_down(artist: dict[str, str], refresh_token: str) -> dict[str, Any]:
    """A request governed by each credential policy (login and login_account share one)."""
    return {
        "register": (
            "POST",
            "/api/auth/register",
            {"email": "late@example.com", "password": NEW_PASSWORD, "display_name": "Late"},
            {},
        ),
        "login": ("POST", "/api/auth/login", {"email": "a@example.com", "password": "x" * 8}, {}),
        "resend_verification": (
            "POST",
            "/api/auth/resend-verification",
            {"email": "artist@example.com"},
            {},
        ),
        "forgot_password": (
            "POST",
            "/api/auth/forgot-password",
            {"email": "artist@example.com"},
            {},
        ),
        "reset_password": (
            "POST",
            "/api/auth/reset-password",
            {"token": "t" * 43, "new_password": NEW_PASSWORD},
            {},
        ),
        "email_change": (
            "PATCH",
            "/api/me",
            {"email": "moved@example.com", "current_password": DEFAULT_PASSWORD},
            artist,
        ),
        "refresh": ("POST", "/api/auth/refresh", {"refresh_token": refresh_token}, {}),
        "mfa_verify": (
            "POST",
            "/api/auth/mfa/verify",
            {"challenge_token": "t" * 43, "code": "123456"},
            {},
        ),
        "mfa_manage": ("POST", "/api/me/factors/totp", {"password": DEFAULT_PASSWORD}, artist),
        "mfa_passkey": ("POST", "/api/auth/mfa/passkey/options", {"challenge_token": "t" * 43}, {}),
        "oidc": ("GET", "/api/auth/oidc/acme/start", None, {}),
        "passkey_login": ("POST", "/api/auth/passkeys/options", {}, {}),
        "passkey_register": ("POST", "/api/me/passkeys/options", {}, artist),
    }


@pytest.fixture
def upstream_port() -> int:
    return free_port()


@pytest.fixture
def server(own_redis: OwnRedis, tmp_path: Path, upstream_port: int) -> Iterator[Served]:
    with served(
        tmp_path / "serve",
        BACKLINE_ENV="test",
        BACKLINE_SECRET_KEY=SECRET,
        BACKLINE_REDIS_URL=own_redis.url,
        BACKLINE_CHAT_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        BACKLINE_CHAT_MODEL="test-model",
        BACKLINE_LOG_LEVEL="INFO",
    ) as server:
        yield server


async def test_redis_stopped_and_started_again(
    server: Served, own_redis: OwnRedis, upstream_port: int
) -> None:
    closed = {name for name, policy in DEFAULTS.items() if policy.fail == "closed"}
    opened = {name for name, policy in DEFAULTS.items() if policy.fail == "open"}
    assert opened == {"global", "upload", "chat_message", "chat_tokens"}
    upstream = Upstream()
    upstream_server, upstream_task = await serve(upstream, upstream_port)
    await add_account(server.database_url, "artist@example.com", role=Role.ARTIST)
    try:
        async with (
            asyncio.timeout(120),
            httpx.AsyncClient(base_url=server.url, timeout=15) as client,
        ):
            artist = await sign_in(client, "artist@example.com")
            await exercise(server, own_redis, client, artist, closed)
    finally:
        upstream_server.should_exit = True
        await asyncio.wait_for(upstream_task, 10)


async def exercise(
    server: Served,
    own_redis: OwnRedis,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    closed: set[str],
) -> None:
    signed_in = await client.post(
        "/api/auth/login", json={"email": "artist@example.com", "password": DEFAULT_PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    live = {"Authorization": f"Bearer {tokens['access_token']}"}
    # A session ended before the outage.
    ended = await client.post(
        "/api/auth/login", json={"email": "artist@example.com", "password": DEFAULT_PASSWORD}
    )
    gone = {"Authorization": f"Bearer {ended.json()['access_token']}"}
    assert (await client.post("/api/auth/logout", headers=gone)).status_code == 204
    assert (await client.get("/api/me", headers=gone)).status_code == 401
    draft = await client.post("/api/tracks", json={"title": "Outage"}, headers=artist)
    assert draft.status_code == 201, draft.text

    own_redis.stop()

    requests = refused_while_down(live, tokens["refresh_token"])
    # `login_account` is counted on the login route with `login`, and `oidc_failure` on a
    # provider's callback after `oidc`, which refuses first.
    covered = set(requests) | {"login_account", "oidc_failure"}
    assert covered == closed
    for name, (method, path, body, headers) in requests.items():
        answer = await client.request(method, path, json=body, headers=headers)
        assert is_problem(answer, 503, "rate_limit_unavailable"), (name, answer.text)
        assert answer.headers["retry-after"] == "5"

    # The open policies: reading (global), uploading and the assistant go on, uncounted.
    me = await client.get("/api/me", headers=live)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "artist@example.com"  # the refused email change changed nothing
    assert "ratelimit" not in me.headers
    audio = await client.put(
        f"/api/tracks/{draft.json()['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert audio.status_code == 200, audio.text
    chat = await client.post("/api/chat", json={"message": "Hello?", "stream": False}, headers=live)
    assert chat.status_code == 200, chat.text

    # Revocation: checked against the database instead; ending a session cannot be announced
    # to the other processes, so it is refused and changes nothing.
    assert (await client.get("/api/me", headers=gone)).status_code == 401
    out = await client.post("/api/auth/logout", headers=live)
    assert is_problem(out, 503, "revocation_unavailable"), out.text
    assert (await client.get("/api/me", headers=live)).status_code == 200

    own_redis.start()  # the same port, empty; the app is not restarted

    for _ in range(50):  # the limiter tries Redis again within a second or two
        again = await client.post("/api/auth/forgot-password", json={"email": "artist@example.com"})
        if again.status_code != 503:
            break
        await asyncio.sleep(0.1)
    assert again.status_code == 202, again.text
    assert "ratelimit" in again.headers  # counted again
    assert (await client.get("/api/me", headers=gone)).status_code == 401  # still ended
    assert (await client.post("/api/auth/logout", headers=live)).status_code == 204
    assert (await client.get("/api/me", headers=live)).status_code == 401
    renewed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert renewed.status_code == 401  # the refused refresh did not rotate it; the logout ended it
    keys = redis.Redis(port=own_redis.port).keys("*")
    assert any(b":rl:" in key for key in keys)
    assert any(b":revoked:" in key for key in keys)

    events = [event["event"] for event in log_events(server.output)]
    assert events.count("ratelimit_storage_down") == 1  # one warning for the outage
    assert "ratelimit_storage_recovered" in events
    assert "unhandled_exception" not in events
