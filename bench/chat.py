"""The assistant: what Backline adds to a streamed answer, and many answers at once.

1. Time to first byte (the first `event: delta`) through Backline against the same stand-in
   provider called directly, taking turns, one request at a time (goal: Backline adds < 5 ms
   at p50, < 15 ms at p99). Backline's part includes authentication, checking the limits in
   Redis, reading the context and writing the question. Beside it, in the same run, what a
   bare relay adds (`bench.chat_floor`): the floor of relaying in Python on this machine.
2. 200 concurrent streamed chats, each answered with 200 chunks by the stand-in: every one must
   end `complete`; the server's resident memory at the peak of 50 concurrent streams and at
   the peak of 200 (goal: it grows < 50 MiB between them).

The stand-in provider runs in a process of its own; Backline serves from one uvicorn worker
on PostgreSQL (a throwaway database) and Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from pathlib import Path

import httpx

from backline.accounts import service as accounts
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from bench import report
from bench.load import percentile, server, server_process
from bench.support import postgres_database

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HUGE = "10000000/minute"
EMAIL, PASSWORD = "bench-chat@example.com", "a long bench passphrase"
BODY = {"message": "How do I submit a track?"}


async def _user(url: str) -> None:
    engine = create_engine(Settings(env="test", database_url=url))
    async with create_sessionmaker(engine)() as session, session.begin():
        await accounts.create(
            session, email=EMAIL, password=PASSWORD, display_name="Bench", verified=True
        )
    await engine.dispose()


async def _first_byte(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> float:
    began = time.perf_counter()
    took = None
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():  # read to the end: the connection is reused
            if took is None and (b"event: delta" in chunk or b"chat.completion.chunk" in chunk):
                took = time.perf_counter() - began
    if took is None:
        raise RuntimeError("no delta in the answer")
    return took


async def _ttfb(
    backline: int, floor: int, upstream: int, token: str, count: int
) -> tuple[list[float], list[float]]:
    """What Backline, and the bare relay, add to the direct time to first byte, each call
    paired with a direct one made just before it (so both see the same machine)."""
    direct_body = {
        "model": "bench",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {token}"}
    direct_url = f"http://127.0.0.1:{upstream}/v1/chat/completions"
    urls = {port: f"http://127.0.0.1:{port}/api/chat" for port in (backline, floor)}
    extra: dict[int, list[float]] = {backline: [], floor: []}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        for _ in range(10):  # warm-up
            for url in urls.values():
                await _first_byte(client, url, BODY)
        for _ in range(count):
            for port, url in urls.items():
                direct = await _first_byte(client, direct_url, direct_body)
                through = await _first_byte(client, url, BODY)
                extra[port].append(through - direct)
    return sorted(extra[backline]), sorted(extra[floor])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _concurrent(port: int, token: str, streams: int, pid: int) -> tuple[int, int, int]:
    """(complete, failed, peak RSS) for `streams` chats at once."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    limits = httpx.Limits(max_connections=streams + 10)
    headers = {"Authorization": f"Bearer {token}"}

    async def one(client: httpx.AsyncClient) -> bool:
        try:
            response = await client.post(f"http://127.0.0.1:{port}/api/chat", json=BODY)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and '"state":"complete"' in response.text

    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:
        results = await asyncio.gather(*(one(client) for _ in range(streams)))
    stop.set()
    sampler.join()
    return sum(results), streams - sum(results), peak


def run(*, quick: bool = False) -> None:
    print("assistant")
    with postgres_database() as url:
        asyncio.run(_user(url))
        upstream_env = {"BENCH_CHAT_TOKENS": "20", "BENCH_CHAT_GAP": "0"}
        env = {
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": url,
            "BACKLINE_REDIS_URL": REDIS_URL,
            "BACKLINE_REDIS_PREFIX": f"backline-bench-{uuid.uuid4().hex[:8]}",
            "BACKLINE_RATE_LIMITS": json.dumps(
                {
                    "global": HUGE,
                    "login": HUGE,
                    "login_account": HUGE,
                    "chat_message": HUGE,
                    "chat_tokens": "1000000000/day",
                }
            ),
            "BACKLINE_CHAT_MODEL": "bench",
            "BACKLINE_LOG_LEVEL": "WARNING",
            "BACKLINE_OUTBOX_WORKER": "external",
        }
        with server(upstream_env, factory="bench.chat_upstream:create_app") as upstream:
            env["BACKLINE_CHAT_BASE_URL"] = f"http://127.0.0.1:{upstream}/v1"
            floor_env = {"BENCH_CHAT_UPSTREAM": env["BACKLINE_CHAT_BASE_URL"]}
            with (
                server_process(env) as (port, _),
                server(floor_env, factory="bench.chat_floor:create_app") as floor,
            ):
                token = httpx.post(
                    f"http://127.0.0.1:{port}/api/auth/login",
                    json={"email": EMAIL, "password": PASSWORD},
                ).json()["access_token"]
                extra, bare = asyncio.run(_ttfb(port, floor, upstream, token, 50 if quick else 500))
        ms = 1000
        for quantile, goal in ((0.5, 5), (0.99, 15)):
            report.record(
                bench="chat",
                measure=f"time to first byte added by Backline, p{quantile * 100:g}",
                value=percentile(extra, quantile) * ms,
                unit="ms",
                baseline=percentile(bare, quantile) * ms,
                goal=report.below(goal),
                note="baseline: what a bare relay adds (bench.chat_floor)",
            )
        print(
            f"  time to first byte added by Backline: p50 {percentile(extra, 0.5) * ms:.2f} ms, "
            f"p99 {percentile(extra, 0.99) * ms:.2f} ms (goal < 5 ms, < 15 ms)"
        )
        print(
            f"  added by a bare relay (bench.chat_floor: no middleware, auth, limits or "
            f"database): p50 {percentile(bare, 0.5) * ms:.2f} ms, "
            f"p99 {percentile(bare, 0.99) * ms:.2f} ms"
        )
        gap = "0.005" if not quick else "0.002"
        with server(
            {"BENCH_CHAT_TOKENS": "200", "BENCH_CHAT_GAP": gap},
            factory="bench.chat_upstream:create_app",
        ) as upstream:
            env["BACKLINE_CHAT_BASE_URL"] = f"http://127.0.0.1:{upstream}/v1"
            with server_process(env) as (port, process):
                token = httpx.post(
                    f"http://127.0.0.1:{port}/api/auth/login",
                    json={"email": EMAIL, "password": PASSWORD},
                ).json()["access_token"]
                asyncio.run(_concurrent(port, token, 10, process.pid))  # warm-up
                ok50, bad50, rss50 = asyncio.run(_concurrent(port, token, 50, process.pid))
                ok200, bad200, rss200 = asyncio.run(_concurrent(port, token, 200, process.pid))
        mib = 1024 * 1024
        report.record(
            bench="chat",
            measure="200 concurrent streams of 200 chunks: failed",
            value=bad200,
            goal=report.equal(0),
            note=f"{ok200} complete; with 50 at once, {bad50} failed",
        )
        report.record(
            bench="chat",
            measure="server RSS growth from 50 to 200 concurrent streams",
            value=(rss200 - rss50) / mib,
            unit="MiB",
            goal=report.below(50),
            note=f"peak {rss50 / mib:.0f} MiB at 50, {rss200 / mib:.0f} MiB at 200",
        )
        print(
            f"  50 concurrent streams of 200 chunks: {ok50} complete, {bad50} failed, "
            f"peak RSS {rss50 / mib:.0f} MiB"
        )
        print(
            f"  200 concurrent streams of 200 chunks: {ok200} complete, {bad200} failed, "
            f"peak RSS {rss200 / mib:.0f} MiB; growth from 50 to 200: "
            f"{(rss200 - rss50) / mib:.1f} MiB (goal 0 failed, < 50 MiB)"
        )
