"""Rate limits over HTTP: 429 problems, Retry-After, IETF headers, the global limit, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis.asyncio
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from tests.conftest import OwnRedis

pytestmark = pytest.mark.usefixtures("one_window")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url, rate_limits={"login": "2/minute", "global": "8/minute"}
    )


async def serve(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url="http://t",
        ) as client,
    ):
        yield client


async def test_a_route_limit_answers_429_with_retry_after_and_headers(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.post("/test/credential", json={"email": "Ann@Example.com"})
    assert ok.status_code == 200
    assert ok.headers["ratelimit-policy"] == '"login";q=2;w=60'
    assert ok.headers["ratelimit"].startswith('"login";r=1;t=')

    await client.post("/test/credential", json={"email": "ann@example.com"})
    refused = await client.post("/test/credential", json={"email": "ann@example.com "})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "rate_limited"
    assert body["policy"] == "login"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert '"login";r=0;t=' in refused.headers["ratelimit"]


async def test_the_global_limit_covers_every_path_but_probes(client: httpx.AsyncClient) -> None:
    statuses = [(await client.get("/nowhere")).status_code for _ in range(10)]
    assert statuses == [404] * 8 + [429] * 2
    refused = await client.get("/openapi.json")
    assert refused.status_code == 429
    assert refused.json()["policy"] == "global"
    assert refused.headers["retry-after"]
    assert refused.headers["ratelimit-policy"] == '"global";q=8;w=60'
    assert refused.headers["ratelimit"].startswith('"global";r=0;t=')
    for probe in ("/healthz", "/readyz"):
        assert (await client.get(probe)).status_code == 200
    assert (await client.get("/metrics")).status_code == 404  # not served here, yet not limited


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(
        database_url=database_url,
        rate_limits={"global": "2/hour"},  # an hour: no window ends mid-test
        trusted_proxies="203.0.113.0/24",  # the test client's address
    )
    async for client in serve(app_factory(settings)):
        for i in range(4):  # four different clients behind the proxy
            response = await client.get(
                "/openapi.json", headers={"X-Forwarded-For": f"198.51.100.{i}"}
            )
            assert response.status_code == 200
        same = [
            (await client.get("/openapi.json", headers={"X-Forwarded-For": "198.51.100.0"}))
            for _ in range(2)
        ]
        assert [r.status_code for r in same] == [200, 429]


@pytest.fixture
async def on_own_redis(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    own_redis: OwnRedis,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose limits live on a Redis server of the test's own."""
    settings = make_settings(database_url=database_url, redis_url=own_redis.url)
    async for client in serve(app_factory(settings)):
        yield client


async def test_an_outage_fails_credential_routes_closed_and_reads_open(
    on_own_redis: httpx.AsyncClient, own_redis: OwnRedis
) -> None:
    client = on_own_redis
    assert (await client.post("/test/credential", json={"email": "a@x.io"})).status_code == 200
    own_redis.stop()
    closed = await client.post("/test/credential", json={"email": "a@x.io"})
    assert closed.status_code == 503
    assert closed.json()["code"] == "rate_limit_unavailable"
    assert closed.headers["retry-after"] == "5"
    opened = await client.get("/test/reading")
    assert opened.status_code == 200
    assert "ratelimit" not in opened.headers  # nothing was counted


async def test_one_unsendable_key_spoils_no_one_elses_check(
    on_own_redis: httpx.AsyncClient,
) -> None:
    client = on_own_redis
    # JSON may carry a lone surrogate, which UTF-8 cannot hold; the email key must still be
    # sendable, or its failure would reach every check sent to Redis with it.
    hostile = b'{"email": "\\ud800@example.com", "password": "a password 9"}'
    answers = await asyncio.gather(
        *(client.get("/test/reading") for _ in range(5)),
        client.post(  # counted per address and per account email (`login_account`)
            "/api/auth/login", content=hostile, headers={"Content-Type": "application/json"}
        ),
        *(client.post("/test/credential", json={"email": "b@x.io"}) for _ in range(3)),
    )
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 5 + [422] + [200] * 3  # the address is refused, not a 500
    assert answers[5].headers["content-type"] == "application/problem+json"
    assert all("ratelimit" in answer.headers for answer in answers[5:])  # all counted


async def _from(app: Backline, address: str, path: str, **kwargs: object) -> int:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        if path == "/test/credential":
            return (await client.post(path, json={"email": f"{len(address)}@x.io"})).status_code
        return (await client.get(path)).status_code


@pytest.mark.parametrize("path", ["/openapi.json", "/test/credential"])
async def test_an_ipv6_client_is_counted_by_its_64_network(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    path: str,
) -> None:
    limits = {"global": "3/hour", "login": "3/hour"}  # no window ends mid-test
    if path == "/test/credential":
        limits["global"] = "100/minute"
    settings = make_settings(database_url=database_url, rate_limits=limits)
    app = app_factory(settings)
    async with LifespanManager(app):
        # One host, three addresses of its /64: one budget between them.
        first = [await _from(app, "2001:db8:aa:1::1", path) for _ in range(2)]
        second = [await _from(app, "2001:db8:aa:1:ffff:1234:5678:9abc", path) for _ in range(2)]
        # The next /64 is someone else.
        neighbour = await _from(app, "2001:db8:aa:2::1", path)
    assert first == [200, 200]
    assert second == [200, 429]
    assert neighbour == 200


async def test_the_ipv6_network_length_is_a_setting_and_mapped_ipv4_is_ipv4(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(
        database_url=database_url,
        rate_limits={"global": "2/hour"},  # an hour: no window ends mid-test
        rate_limit_ipv6_prefix=48,
    )
    app = app_factory(settings)
    async with LifespanManager(app):
        wide = [
            await _from(app, "2001:db8:bb:1::1", "/openapi.json"),
            await _from(app, "2001:db8:bb:2::1", "/openapi.json"),
            await _from(app, "2001:db8:bb:3::1", "/openapi.json"),
        ]
        mapped = [
            await _from(app, "198.51.100.7", "/openapi.json"),
            await _from(app, "::ffff:198.51.100.7", "/openapi.json"),
            await _from(app, "::ffff:198.51.100.7", "/openapi.json"),
        ]
        other_v4 = await _from(app, "198.51.100.8", "/openapi.json")
    assert wide == [200, 200, 429]
    assert mapped == [200, 200, 429]
    assert other_v4 == 200


@pytest.mark.redis
async def test_redis_keys_hold_no_email_address_yet_count_each_address_once(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
) -> None:
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        rate_limits={"forgot_password": "2/hour", "login_account": "2/hour"},
    )
    app = app_factory(settings)
    spellings = [
        "Zelda.Keymaker@Example.COM",
        "zelda.keymaker@example.com ",
        "ZELDA.KEYMAKER@example.com",
    ]

    async def ask(address: str, path: str, email: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"email": email}
            if path == "/api/auth/login":
                body["password"] = "not the password 9"
            return (await client.post(path, json=body)).status_code

    async with LifespanManager(app):
        # Each from an address of its own: only the account email's budget is shared.
        forgot = [
            await ask(f"198.51.100.{i}", "/api/auth/forgot-password", email)
            for i, email in enumerate(spellings)
        ]
        login = [
            await ask(f"198.51.100.{10 + i}", "/api/auth/login", email)
            for i, email in enumerate(spellings)
        ]
        other = await ask("198.51.100.20", "/api/auth/forgot-password", "someone@example.com")
    assert forgot == [202, 202, 429]
    assert login == [401, 401, 429]
    assert other == 202

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in client.scan_iter(match=f"{settings.redis_prefix}*")]
    finally:
        await client.aclose()
    assert any("forgot_password" in key for key in keys)
    assert any("login_account" in key for key in keys)
    for key in keys:
        for part in ("zelda", "keymaker", "@", "example.com", "someone"):
            assert part not in key.lower(), key
