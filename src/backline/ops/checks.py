"""Readiness checks: can this process serve traffic right now?

Each check answers within two seconds: the database (`SELECT 1`), Redis (`PING`) when
configured, and object storage (the local directory is writable, or the S3 bucket answers). A
failure names the dependency and the kind of error, never its message, which may carry a host
name or credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.storage.base import Storage

CHECK_TIMEOUT = 2.0
Check = Callable[[], Awaitable[None]]


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def redis_check(redis: Redis) -> Check:
    async def check() -> None:
        await redis.ping()

    return check


def storage_check(storage: Storage) -> Check:
    async def check() -> None:
        await storage.check()

    return check


def build_checks(engine: AsyncEngine, redis: Redis | None, storage: Storage) -> dict[str, Check]:
    checks: dict[str, Check] = {"database": database_check(engine)}
    if redis is not None:
        checks["redis"] = redis_check(redis)
    checks["storage"] = storage_check(storage)
    return checks


async def run_checks(checks: dict[str, Check]) -> dict[str, str]:
    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return "ok"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))
