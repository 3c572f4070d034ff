"""Authentication: what checking a caller costs, and that hashing never blocks the loop.

1. Requests per second of an authenticated `GET /api/me` (JWT, revocation check in Redis,
   the user's row from PostgreSQL) against a bare route of the same app returning a constant,
   the two taking turns (`bench.load.alternate`) (goal >= 30%).
2. Logins per second against the raw Argon2id rate of this machine, hashing on as many
   threads as it has cores, the two alternating, and where a login's CPU went: the server's
   hashing threads (beside a raw hash), its event loop, PostgreSQL, Redis, and everything else
   (the load generator, the kernel's share of loopback traffic). Then the same logins with
   hashing taken out (every password right at once), so that what a login costs beside its
   hash is measured with no hash sharing the cores; the goal allows a ninth of a raw hash for
   all of it. Last, the same rounds against `bench.floor`, the sign-in's work with FastAPI and
   SQLAlchemy's execution taken out: how close to the raw rate a sign-in gets on this machine
   at best. The login measure is judged against that floor (goal >= 95% of it, each rate taken
   against the raw rate of its own rounds), since on two shared cores the raw rate is out of
   reach for any server.
   Both rates are steady-state rates: logins are counted in a window that opens once the
   server's queue has filled (a cold start serves nothing for the length of a hash), hashes
   when they finish before the deadline (not the one each thread has under way then).
3. p99 latency of `GET /api/me` while logins flood the server (goal < 50 ms).
4. The revocation check alone against the loopback Redis (goal p50 < 0.2 ms), beside a PING.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import median

import httpx
import redis.asyncio

from backline.accounts import service as accounts
from backline.accounts.passwords import cores, hasher
from backline.accounts.revocation import Revocations
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from bench import report
from bench.load import (
    Request,
    alternate,
    measure,
    paired_ratios,
    percentile,
    server_process,
    spread,
    start,
)
from bench.support import CpuMeter, postgres_database

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL, PASSWORD = "bench@example.com", "a benchmark passphrase 9"
# Whose token reads `/api/me`: another account than the one the floods sign in, whose oldest
# sessions the cap on open sessions revokes as the floods open new ones.
READER = "bench-reader@example.com"
HUGE = "10000000/minute"
ROUNDS = 60
LOGIN_ROUNDS = 10  # of 1.5 s each (4 of 0.5 s with --quick)
FLOOR_GOAL = 0.95  # of the floor's rate, each against the raw rate of its own rounds
FILL = 0.3  # seconds of logins before they are counted: the server's queue fills, as it stays


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


async def _user(url: str) -> None:
    engine = create_engine(Settings(env="test", database_url=url))
    async with create_sessionmaker(engine)() as session, session.begin():
        for email in (EMAIL, READER):
            await accounts.create(
                session, email=email, password=PASSWORD, display_name="Bench", verified=True
            )
    await engine.dispose()


def _hash_rate(seconds: float) -> tuple[float, float]:
    """Hashes per second on every core, and the CPU seconds one took."""
    stored = hasher.hash(PASSWORD)
    stop = time.perf_counter() + seconds

    def spin() -> tuple[int, int, float]:
        """Hashes finished before the deadline, hashes run, and their CPU seconds."""
        done, began = 0, time.thread_time()
        while True:
            hasher.verify(stored, PASSWORD)
            if time.perf_counter() > stop:
                return done, done + 1, time.thread_time() - began
            done += 1

    threads = cores()  # as many as the server hashes on
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: spin(), range(threads)))
    done = sum(finished for finished, _, _ in results)
    ran = sum(count for _, count, _ in results)
    return done / seconds, sum(cpu for _, _, cpu in results) / ran


async def _revocation_cost(url: str, count: int) -> tuple[list[float], list[float]]:
    settings = Settings(
        env="test",
        database_url=url,
        redis_url=REDIS_URL,
        redis_prefix=f"backline-bench-{uuid.uuid4().hex[:8]}",
    )
    engine = create_engine(settings)
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    revocations = Revocations(settings, client, create_sessionmaker(engine))
    session_id = uuid.uuid4()
    checks: list[float] = []
    pings: list[float] = []
    for _ in range(count):
        began = time.perf_counter()
        await client.ping()
        pings.append(time.perf_counter() - began)
        began = time.perf_counter()
        await revocations.is_revoked(session_id)
        checks.append(time.perf_counter() - began)
    await client.aclose()
    await engine.dispose()
    return sorted(checks), sorted(pings)


def _cost_without_hashing(
    env: dict[str, str], login_body: bytes, *, seconds: float
) -> dict[str, float]:
    """CPU ms per login, by part, of a server whose password checks cost nothing."""
    factory = "bench.apps:create_app_without_hashing"
    with server_process(env, factory=factory) as (port, process):
        flood = _flood(login_body)
        measure(port, "/api/auth/login", seconds=0.5, **flood)  # warm-up
        meter = CpuMeter(process.pid)
        opens = time.monotonic() + FILL
        logins_of = start(port, "/api/auth/login", seconds=seconds, opens=opens, **flood)
        _sleep_until(opens)
        meter.start()
        _sleep_until(opens + seconds)
        meter.stop()
        logins, _ = logins_of()
    return {part: spent / (logins * seconds) * 1000 for part, spent in meter.parts().items()}


@dataclass
class SignIns:
    """Alternating rounds of logins and of the raw hash rate, and where the CPU went."""

    ratios: list[float]
    rates: list[float]  # logins/s, round by round
    hashes: list[float]  # raw hashes/s, round by round
    per_login: dict[str, float]  # CPU ms per login, by part
    raw_cpu: float  # CPU ms of a raw hash (median)
    last: tuple[float, float]  # logins/s and hashes/s of the last round

    def cpu(self, *parts: str) -> str:
        return ", ".join(f"{_PARTS[part]} {self.per_login[part]:.1f} ms" for part in parts)


_PARTS = {
    "threads": "hashing threads",
    "loop": "event loop",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "other": "everything else (load generator, kernel)",
}


def _flood(body: bytes) -> dict[str, object]:
    return {"method": "POST", "body": body, "connections": 8}


def _sign_ins(port: int, pid: int, body: bytes, rounds: int, seconds: float) -> SignIns:
    """Logins per second against the raw Argon2id rate, in `rounds` alternating rounds."""
    ratios: list[float] = []
    rates: list[float] = []
    hash_rates: list[float] = []
    meter, signed_in, raw_cpu = CpuMeter(pid), 0.0, []
    logins = hashes = 0.0
    for _ in range(rounds):  # alternated with the raw rate, as the routes are
        opens = time.monotonic() + FILL
        flood = start(port, "/api/auth/login", seconds=seconds, opens=opens, **_flood(body))
        _sleep_until(opens)
        meter.start()
        _sleep_until(opens + seconds)
        meter.stop()
        logins, _ = flood()
        time.sleep(0.5)  # the logins still in the server finish before the raw rate
        signed_in += logins * seconds
        hashes, cpu_per_hash = _hash_rate(seconds)
        raw_cpu.append(cpu_per_hash)
        ratios.append(logins / hashes)
        rates.append(logins)
        hash_rates.append(hashes)
    per_login = {part: spent / signed_in * 1000 for part, spent in meter.parts().items()}
    return SignIns(ratios, rates, hash_rates, per_login, median(raw_cpu) * 1000, (logins, hashes))


def run(*, quick: bool = False) -> None:
    seconds = 2.0 if quick else 8.0
    rounds = 8 if quick else ROUNDS
    login_rounds, login_seconds = (4, 0.5) if quick else (LOGIN_ROUNDS, 1.5)
    ms = 1000
    with postgres_database() as url:
        asyncio.run(_user(url))
        env = {
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": url,
            "BACKLINE_REDIS_URL": REDIS_URL,
            "BACKLINE_REDIS_PREFIX": f"backline-bench-{uuid.uuid4().hex[:8]}",
            "BACKLINE_SECRET_KEY": uuid.uuid4().hex * 2,
            "BACKLINE_RATE_LIMITS": json.dumps(
                {"global": HUGE, "login": HUGE, "login_account": HUGE}
            ),
            "BACKLINE_LOG_LEVEL": "WARNING",
        }
        login = {"email": EMAIL, "password": PASSWORD}
        login_body = json.dumps(login).encode()
        with server_process(env) as (port, process):
            token = httpx.post(
                f"http://127.0.0.1:{port}/api/auth/login",
                json={"email": READER, "password": PASSWORD},
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            measure(port, "/api/me", seconds=1.0, headers=auth)  # warm-up
            rows = alternate(
                port,
                [Request("/bench/constant"), Request("/api/me", headers=auth)],
                rounds=rounds,
            )
            ratios = paired_ratios(rows, 1, 0)
            bare, me = median(row[0] for row in rows), median(row[1] for row in rows)

            logins = _sign_ins(port, process.pid, login_body, login_rounds, login_seconds)
            without = _cost_without_hashing(env, login_body, seconds=login_seconds * 2)
            with server_process(env, factory="bench.floor:create_app") as (floor_port, floor):
                signed = httpx.post(f"http://127.0.0.1:{floor_port}/api/auth/login", json=login)
                if signed.status_code != 200:  # else the rounds would count its refusals
                    raise SystemExit(f"bench: the floor refused a login ({signed.status_code})")
                measure(floor_port, "/api/auth/login", seconds=0.5, **_flood(login_body))
                lean = _sign_ins(floor_port, floor.pid, login_body, login_rounds, login_seconds)

            flood = start(
                port,
                "/api/auth/login",
                method="POST",
                body=login_body,
                seconds=seconds,
                connections=8,
            )
            time.sleep(0.3)
            _, during = measure(port, "/api/me", seconds=seconds - 0.6, connections=2, headers=auth)
            flood()
        checks, pings = asyncio.run(_revocation_cost(url, 500 if quick else 5000))

    print("authentication (PostgreSQL, Redis)")
    print(
        f"  GET /api/me {me:6.0f} req/s vs a bare route {bare:6.0f} req/s (medians of {rounds} "
        f"alternating rounds of 0.25 s): {spread(ratios)} (goal >= 30%)"
    )
    rate, raw = logins.last
    print(
        f"  logins {rate:6.1f}/s vs raw Argon2id {raw:6.1f}/s (last round); median of "
        f"{login_rounds} alternating rounds {median(logins.ratios):6.1%}"
    )
    print(
        f"  CPU per login: {logins.cpu('threads')} (a raw hash {logins.raw_cpu:.1f} ms), "
        f"{logins.cpu('loop', 'postgres', 'redis', 'other')}"
    )
    beside = sum(without[part] for part in ("loop", "postgres", "redis"))
    print(
        f"  a login with hashing taken out: event loop {without['loop']:.1f} ms, PostgreSQL "
        f"{without['postgres']:.1f} ms, Redis {without['redis']:.1f} ms of CPU, {beside:.1f} ms "
        f"in all (everything else {without['other']:.1f} ms); 90% allows "
        f"{logins.raw_cpu / 9:.1f} ms beside a raw hash"
    )
    print(
        f"  the same sign-in with FastAPI and SQLAlchemy's execution taken out (bench.floor): "
        f"median {median(lean.ratios):6.1%}; {lean.cpu('loop', 'postgres', 'redis', 'other')}"
    )
    against_floor = median(logins.ratios) / median(lean.ratios)
    print(f"  logins against the floor: {against_floor:6.1%} (goal >= {FLOOR_GOAL:.0%})")
    print(
        f"  GET /api/me during a login flood: p50 {percentile(during, 0.5) * ms:.1f} ms, "
        f"p99 {percentile(during, 0.99) * ms:.1f} ms (goal p99 < 50 ms)"
    )
    print(
        f"  revocation check: p50 {percentile(checks, 0.5) * ms:.3f} ms (goal < 0.2 ms); "
        f"a PING p50 {percentile(pings, 0.5) * ms:.3f} ms"
    )
    _record(
        rounds=(rounds, login_rounds),
        me=(me, bare, ratios),
        logins=logins,
        lean=lean,
        beside=(beside, without["other"]),
        during=during,
        revocation=(checks, pings),
    )


def _record(
    *,
    rounds: tuple[int, int],
    me: tuple[float, float, list[float]],
    logins: SignIns,
    lean: SignIns,
    beside: tuple[float, float],
    during: list[float],
    revocation: tuple[list[float], list[float]],
) -> None:
    ms = 1000
    me_rate, bare, ratios = me
    report.record(
        bench="auth",
        measure="GET /api/me against a bare route",
        value=me_rate,
        unit="req/s",
        baseline=bare,
        ratio=median(ratios),
        goal=report.at_least(0.30, of="ratio"),
        note=f"median of {rounds[0]} alternating rounds; quartiles "
        f"{ratios[len(ratios) // 4]:.1%}, {ratios[3 * len(ratios) // 4]:.1%}",
    )
    report.record(
        bench="auth",
        measure="logins against raw Argon2id on every core",
        value=median(logins.rates),
        unit="/s",
        baseline=median(logins.hashes),
        ratio=median(logins.ratios),
        note=f"median of {rounds[1]} alternating rounds; judged against the floor below",
    )
    report.record(
        bench="auth",
        measure="logins against the sign-in floor (bench.floor)",
        value=median(logins.rates),
        unit="/s",
        baseline=median(lean.rates),
        ratio=median(logins.ratios) / median(lean.ratios),
        goal=report.at_least(FLOOR_GOAL, of="ratio"),
        note=f"each against the raw rate of its own rounds: {median(logins.ratios):.1%} "
        f"and {median(lean.ratios):.1%}",
    )
    cost, other = beside
    report.record(
        bench="auth",
        measure="CPU per login beside its hash (hashing taken out)",
        value=cost,
        unit="ms",
        goal=report.at_most(logins.raw_cpu / 9),
        note=f"event loop, PostgreSQL and Redis; a ninth of a raw hash "
        f"({logins.raw_cpu:.1f} ms); everything else {other:.1f} ms",
    )
    report.record(
        bench="auth",
        measure="GET /api/me p99 during a login flood",
        value=percentile(during, 0.99) * ms,
        unit="ms",
        goal=report.below(50),
        note=f"p50 {percentile(during, 0.5) * ms:.1f} ms",
    )
    checks, pings = revocation
    report.record(
        bench="auth",
        measure="revocation check p50 (a PING as baseline)",
        value=percentile(checks, 0.5) * ms,
        unit="ms",
        baseline=percentile(pings, 0.5) * ms,
        goal=report.below(0.2),
    )
