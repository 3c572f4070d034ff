"""The limiter on memory and on the real Redis; Redis cut away and back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from backline.config import Settings
from backline.metrics import RATE_LIMIT_DEGRADED, RATE_LIMIT_STORAGE_ERRORS
from backline.pipelining import PipelinedScript
from backline.ratelimit.limiter import RateLimiter, RateLimitUnavailable
from tests.conftest import LogCapture, OwnRedis

pytestmark = pytest.mark.usefixtures("one_window")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage_url(request: pytest.FixtureRequest) -> str | None:
    """None for in-process memory, else the Redis server's URL."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def limiter(
    storage_url: str | None, make_settings: Callable[..., Settings]
) -> AsyncIterator[RateLimiter]:
    overrides = {
        "login": "3/minute;5/hour",
        "forgot_password": "3/minute",
        "chat_tokens": "100/day",
    }
    settings = make_settings(redis_url=storage_url, rate_limits=overrides)
    limiter = RateLimiter.from_settings(settings)
    yield limiter
    await limiter.aclose()


async def test_admits_exactly_the_limit(limiter: RateLimiter) -> None:
    decisions = [await limiter.check("login", {"ip": "198.51.100.1"}) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].limit == 3
    assert decisions[3].window == 60
    assert 1 <= decisions[3].reset <= 60
    # Another address has its own count.
    assert (await limiter.check("login", {"ip": "198.51.100.2"})).allowed


async def test_concurrent_checks_admit_exactly_the_limit(
    limiter: RateLimiter, storage_url: str | None
) -> None:
    if storage_url is not None:  # on Redis they travel together; each still counts on its own
        assert limiter.pipeliner is not None
        assert isinstance(limiter.storage.bridge.lua_acquire_sliding_window, PipelinedScript)  # type: ignore[attr-defined]
    decisions = await asyncio.gather(
        *(limiter.check("login", {"ip": "192.0.2.9"}, stats=False) for _ in range(40))
    )
    assert sum(decision.allowed for decision in decisions) == 3
    assert all(not decision.allowed for decision in decisions[3:])


@pytest.mark.redis
async def test_a_check_and_its_window_cost_one_round_trip(
    redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(redis_url=redis_url, rate_limits={"login": "3/minute;5/hour"})
    limiter = RateLimiter.from_settings(settings)
    assert limiter.pipeliner is not None
    decisions = [await limiter.check("login", {"ip": "198.51.100.3"}) for _ in range(4)]
    # The window read after each hit travels with it, and still sees it.
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    # One write per limit asked: both limits for the first three, and the per-minute limit,
    # which refuses, for the fourth.
    assert limiter.pipeliner.batches == 3 * 2 + 1
    await limiter.aclose()


async def test_every_key_must_admit(limiter: RateLimiter) -> None:
    policy = "forgot_password"  # counted per address and per account email
    for i in range(3):  # one account, from three addresses
        assert (await limiter.check(policy, {"ip": f"203.0.113.{i}", "email": "a@x.io"})).allowed
    refused = await limiter.check(policy, {"ip": "203.0.113.99", "email": "a@x.io"})
    assert not refused.allowed
    assert (await limiter.check(policy, {"ip": "203.0.113.99", "email": "b@x.io"})).allowed


async def test_costs_count_in_units(limiter: RateLimiter) -> None:
    assert (await limiter.check("chat_tokens", {"user": "u1"}, cost=60)).remaining == 40
    assert (await limiter.check("chat_tokens", {"user": "u1"}, cost=40)).allowed
    assert not (await limiter.check("chat_tokens", {"user": "u1"}, cost=1)).allowed


@pytest.mark.redis
async def test_keys_carry_the_deployment_prefix_and_hash_tags(
    make_settings: Callable[..., Settings], redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio

    settings = make_settings(redis_url=redis_url, redis_prefix=redis_prefix)
    limiter = RateLimiter.from_settings(settings)
    await limiter.check("login", {"ip": "192.0.2.1"})
    await limiter.aclose()
    client = redis.asyncio.Redis.from_url(redis_url)
    keys = [key.decode() async for key in client.scan_iter(match=f"{redis_prefix}:*")]
    await client.aclose()
    assert keys
    assert all(key.startswith(f"{redis_prefix}:rl:") for key in keys)
    assert all("192.0.2.1" in key for key in keys)


async def test_redis_outage_fails_closed_or_open_and_recovers(
    make_settings: Callable[..., Settings], own_redis: OwnRedis, logs: LogCapture
) -> None:
    from backline.logging import configure_logging

    settings = make_settings(redis_url=own_redis.url, rate_limits={"login": "2/minute"})
    configure_logging(settings, stream=logs.stream)
    now = [0.0]
    limiter = RateLimiter.from_settings(settings)
    limiter.clock = lambda: now[0]
    try:
        assert (await limiter.check("login", {"ip": "192.0.2.7"})).allowed
        errors_before = RATE_LIMIT_STORAGE_ERRORS._value.get()

        own_redis.stop()  # Redis goes away mid-run
        for _ in range(6):  # 2.4 s of outage: the breaker re-tries Redis more than once
            with pytest.raises(RateLimitUnavailable) as closed:
                await limiter.check("login", {"ip": "192.0.2.7"})
            assert closed.value.status == 503
            assert closed.value.headers["Retry-After"] == "5"
            assert (await limiter.check("upload", {"user": "u"})).allowed  # fails open
            now[0] += 0.4
        assert len(logs.named("ratelimit_storage_down")) == 1  # one warning per outage
        assert RATE_LIMIT_STORAGE_ERRORS._value.get() > errors_before
        assert RATE_LIMIT_DEGRADED._value.get() == 1

        own_redis.start()  # back on the same port: no restart of the app
        now[0] += 2
        # A fresh server: counting starts again, and limits hold again.
        after = [(await limiter.check("login", {"ip": "192.0.2.7"})).allowed for _ in range(3)]
        assert after == [True, True, False]
        assert len(logs.named("ratelimit_storage_recovered")) == 1
        assert RATE_LIMIT_DEGRADED._value.get() == 0
    finally:
        await limiter.aclose()
