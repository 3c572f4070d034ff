"""Rate limiting: what one check costs, and what it costs a trivial route.

1. Latency of one `global` check against the loopback Redis (goal p50 < 0.3 ms), beside a bare
   Redis PING from the same client in the same run.
2. Requests per second of a trivial route under the global limit against the same trivial work
   exempt from it, same app and server settings, same run, taking turns (`bench.load.alternate`)
   (goal >= 85%).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from statistics import median

import redis.asyncio

from backline.config import Settings
from backline.ratelimit.limiter import RateLimiter
from bench import report
from bench.load import Request, alternate, measure, paired_ratios, percentile, server, spread

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HUGE = "10000000/minute"  # never reached: the cost of counting, not of refusing
ROUNDS = 60


async def _latencies(count: int) -> tuple[list[float], list[float]]:
    prefix = f"backline-bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        env="test", redis_url=REDIS_URL, redis_prefix=prefix, rate_limits={"global": HUGE}
    )
    limiter = RateLimiter.from_settings(settings)
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    checks: list[float] = []
    pings: list[float] = []
    try:
        for i in range(count):
            began = time.perf_counter()
            await client.ping()
            pings.append(time.perf_counter() - began)
            began = time.perf_counter()
            await limiter.check("global", {"ip": f"192.0.2.{i % 200}"}, stats=False)
            checks.append(time.perf_counter() - began)
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()
        await limiter.aclose()
    return sorted(checks), sorted(pings)


def run(*, quick: bool = False) -> None:
    checks, pings = asyncio.run(_latencies(500 if quick else 5000))
    ms = 1000
    print("rate limiting")
    print(
        f"  one check on loopback Redis: p50 {percentile(checks, 0.5) * ms:.3f} ms, "
        f"p99 {percentile(checks, 0.99) * ms:.3f} ms (goal p50 < 0.3 ms); "
        f"a bare PING: p50 {percentile(pings, 0.5) * ms:.3f} ms "
        f"({percentile(checks, 0.5) / percentile(pings, 0.5):.1f}x)"
    )
    report.record(
        bench="ratelimit",
        measure="one global check on loopback Redis, p50 (a PING as baseline)",
        value=percentile(checks, 0.5) * ms,
        unit="ms",
        baseline=percentile(pings, 0.5) * ms,
        goal=report.below(0.3),
        note=f"p99 {percentile(checks, 0.99) * ms:.3f} ms",
    )
    env = {
        "BACKLINE_ENV": "test",
        "BACKLINE_REDIS_URL": REDIS_URL,
        "BACKLINE_REDIS_PREFIX": f"backline-bench-{uuid.uuid4().hex[:8]}",
        "BACKLINE_RATE_LIMITS": json.dumps({"global": HUGE}),
        "BACKLINE_LOG_LEVEL": "WARNING",
    }
    rounds = 8 if quick else ROUNDS
    with server(env) as port:
        measure(port, "/bench/constant", seconds=1.0)  # warm-up
        rows = alternate(port, [Request("/healthz"), Request("/bench/constant")], rounds=rounds)
    ratios = paired_ratios(rows, 1, 0)
    unlimited = median(row[0] for row in rows)
    limited = median(row[1] for row in rows)
    print(
        f"  trivial route, {rounds} alternating rounds of 0.25 s each: "
        f"unlimited {unlimited:6.0f} req/s, limited {limited:6.0f} req/s (medians)"
    )
    print(
        f"  limited against unlimited, median of the {rounds} rounds: {spread(ratios)} "
        f"(goal >= 85%)"
    )
    report.record(
        bench="ratelimit",
        measure="trivial route under the global limit against it exempt",
        value=limited,
        unit="req/s",
        baseline=unlimited,
        ratio=median(ratios),
        goal=report.at_least(0.85, of="ratio"),
        note=f"median of {rounds} alternating rounds of 0.25 s",
    )
