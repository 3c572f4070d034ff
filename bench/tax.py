"""Tax details on PostgreSQL and Redis: key rotation, and reading one's own form.

1. `backline keys rotate` over 10,000 and 100,000 tax forms sealed under an old key (1,000 and
   10,000 with --quick): rows per second, and the growth of the rotating process's peak RSS
   from the smaller run to the larger (goal < 50 MiB: batches, not the table, in memory). Each
   rotation runs in a process of its own; its peak RSS is read from the kernel when it ends
   (wait4).
2. Requests per second of `GET /api/me/tax-form` (decrypting the form, TIN masked) against
   `GET /api/me` of the same server in the same run, the two taking turns (goal >= 70%).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from statistics import median

import httpx
import redis
from sqlalchemy import insert

from backline.accounts import service as accounts
from backline.accounts.models import Role
from backline.config import Settings
from backline.context import ClientInfo
from backline.crypto import KeyRing, generate_entry
from backline.db import create_engine, create_sessionmaker, utcnow
from backline.tax import service as tax
from backline.tax.models import TaxForm
from backline.tax.schemas import TaxFormIn
from bench import report
from bench.load import HOST, Request, alternate, measure, paired_ratios, server, spread
from bench.support import postgres_database

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL, PASSWORD = "artist@example.com", "a benchmark passphrase 9"
HUGE = "10000000/minute"
MIB = 1024 * 1024
RSS_GOAL, RATIO_GOAL = 50 * MIB, 0.70
INSERT_BATCH = 5_000
FORM = {
    "legal_name": "Ann Marie O'Neil",
    "business_name": "Ann's Records",
    "federal_tax_classification": "individual",
    "address_line1": "12 Harbor St",
    "address_line2": "Apt 4",
    "city": "Brooklyn",
    "state": "NY",
    "postal_code": "11201-1234",
    "tin_type": "ssn",
    "tin": "401-52-7386",
    "signature_name": "Ann Marie O'Neil",
    "certify": True,
}
ROTATE = """
import asyncio, json, sys, time
import backline.models
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.encrypted import rotate

async def main():
    settings = Settings()
    engine = create_engine(settings)
    started = time.perf_counter()
    result = await rotate(create_sessionmaker(engine), settings.key_ring, batch_size=500)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    print(json.dumps({"rotated": result.rotated, "seconds": elapsed}))

asyncio.run(main())
"""


def _verdict(met: bool) -> str:
    return "goal met" if met else "goal missed"


async def _seal_forms(url: str, ring: KeyRing, count: int) -> None:
    """`count` superseded forms (no owner), sealed under `ring`, inserted in large batches."""
    details = json.dumps({k: v for k, v in FORM.items() if k not in ("tin", "certify")})
    engine = create_engine(Settings(env="test", database_url=url))
    now = utcnow()
    try:
        for start in range(0, count, INSERT_BATCH):
            rows = []
            for _ in range(min(INSERT_BATCH, count - start)):
                form_id = uuid.uuid4()
                cell = {"table": "tax_forms", "row_id": form_id}
                rows.append(
                    {
                        "id": form_id,
                        "user_id": None,
                        "created_at": now,
                        "superseded_at": now,
                        "tin_type": "ssn",
                        "tin_last4": "7386",
                        "federal_tax_classification": "individual",
                        "state": "NY",
                        "certification_version": tax.CERTIFICATION_VERSION,
                        "tin": ring.seal("401527386", column="tin", **cell),
                        "details": ring.seal(details, column="details", **cell),
                    }
                )
            async with engine.begin() as connection:
                await connection.execute(insert(TaxForm), rows)
    finally:
        await engine.dispose()


def _rotate(url: str, keys: str) -> tuple[int, float, int]:
    """Values re-encrypted, seconds spent, and the rotating process's peak RSS in bytes."""
    env = {**os.environ, "BACKLINE_ENV": "test", "BACKLINE_DATABASE_URL": url}
    env["BACKLINE_ENCRYPTION_KEYS"] = keys
    env["BACKLINE_LOG_LEVEL"] = "WARNING"
    process = subprocess.Popen(
        [sys.executable, "-c", ROTATE], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"tax bench: the rotation failed ({process.returncode})")
    report = json.loads(output)
    return report["rotated"], report["seconds"], usage.ru_maxrss * 1024


def _rotations(sizes: tuple[int, int]) -> list[str]:
    lines, peaks = [], []
    for size in sizes:
        old, new = generate_entry(), generate_entry()
        with postgres_database() as url:
            asyncio.run(_seal_forms(url, KeyRing.parse(old), size))
            rotated, seconds, peak = _rotate(url, f"{new},{old}")
            if rotated != 2 * size:
                raise SystemExit(f"tax bench: {rotated} values rotated, not {2 * size}")
        peaks.append(peak)
        lines.append(
            f"  keys rotate, {size:>7,} forms ({2 * size:,} values): {size / seconds:8.0f} rows/s, "
            f"peak RSS {peak / MIB:6.1f} MiB"
        )
    growth = peaks[1] - peaks[0]
    report.record(
        bench="tax",
        measure=f"keys rotate: peak RSS growth from {sizes[0]:,} to {sizes[1]:,} forms",
        value=growth / MIB,
        unit="MiB",
        goal=report.below(RSS_GOAL / MIB),
        note=f"{sizes[1] / seconds:,.0f} rows/s over {sizes[1]:,} forms",
    )
    lines.append(
        f"  peak RSS growth from {sizes[0]:,} to {sizes[1]:,} forms: {growth / MIB:6.1f} MiB "
        f"(goal < {RSS_GOAL // MIB} MiB: {_verdict(growth < RSS_GOAL)})"
    )
    return lines


async def _artist(url: str, keys: str) -> None:
    settings = Settings(env="test", database_url=url, encryption_keys=keys)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            user = await accounts.create(
                session,
                email=EMAIL,
                password=PASSWORD,
                display_name="Artist",
                role=Role.ARTIST,
                verified=True,
            )
            await tax.submit(
                session,
                ring=settings.key_ring,
                user=user,
                data=TaxFormIn.model_validate(FORM),
                client=ClientInfo("127.0.0.1", "bench"),
            )
    finally:
        await engine.dispose()


def _reading(seconds: float, rounds: int) -> list[str]:
    keys = generate_entry()
    prefix = f"backline-bench-{uuid.uuid4().hex[:8]}"
    try:
        with postgres_database() as url:
            asyncio.run(_artist(url, keys))
            env = {
                "BACKLINE_ENV": "test",
                "BACKLINE_DATABASE_URL": url,
                "BACKLINE_REDIS_URL": REDIS_URL,
                "BACKLINE_REDIS_PREFIX": prefix,
                "BACKLINE_SECRET_KEY": uuid.uuid4().hex * 2,
                "BACKLINE_ENCRYPTION_KEYS": keys,
                "BACKLINE_RATE_LIMITS": json.dumps({"global": HUGE, "login": HUGE}),
                "BACKLINE_LOG_LEVEL": "WARNING",
            }
            with server(env) as port:
                token = httpx.post(
                    f"http://{HOST}:{port}/api/auth/login",
                    json={"email": EMAIL, "password": PASSWORD},
                ).json()["access_token"]
                auth = {"Authorization": f"Bearer {token}"}
                form = httpx.get(f"http://{HOST}:{port}/api/me/tax-form", headers=auth)
                if form.status_code != 200 or form.json()["tin"] != "***-**-7386":
                    raise SystemExit(f"tax bench: the form answered {form.status_code}")
                measure(port, "/api/me/tax-form", seconds=seconds / 2, headers=auth)  # warm-up
                rows = alternate(
                    port,
                    [Request("/api/me", headers=auth), Request("/api/me/tax-form", headers=auth)],
                    rounds=rounds,
                )
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for key in client.scan_iter(match=f"{prefix}:*"):
                client.delete(key)
        finally:
            client.close()
    ratios = paired_ratios(rows, 1, 0)
    me, form_rate = median(r[0] for r in rows), median(r[1] for r in rows)
    report.record(
        bench="tax",
        measure="GET /api/me/tax-form against GET /api/me",
        value=form_rate,
        unit="req/s",
        baseline=me,
        ratio=median(ratios),
        goal=report.at_least(RATIO_GOAL, of="ratio"),
        note=f"median of {len(rows)} alternating rounds",
    )
    return [
        f"  GET /api/me/tax-form {form_rate:8.0f} req/s; GET /api/me {me:8.0f} req/s",
        f"  tax form / me, {len(rows)} alternating rounds: {spread(ratios)} "
        f"(goal >= {RATIO_GOAL:.0%}: {_verdict(median(ratios) >= RATIO_GOAL)})",
    ]


def run(*, quick: bool = False) -> None:
    started = time.perf_counter()
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    lines = _rotations(sizes)
    lines += _reading(seconds=1.0 if quick else 4.0, rounds=8 if quick else 32)
    print(f"tax (PostgreSQL, Redis; {time.perf_counter() - started:.0f} s)")
    for line in lines:
        print(line)
