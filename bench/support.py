"""What the benchmarks share: a throwaway PostgreSQL database and an SMTP sink on loopback."""

from __future__ import annotations

import asyncio
import email
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from backline import migrate
from backline.config import Settings
from backline.db import create_engine

ADMIN_URL = os.environ.get("BACKLINE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def postgres_database() -> Iterator[str]:
    """A migrated database of its own, dropped afterwards."""
    name = f"backline_bench_{uuid.uuid4().hex[:8]}"
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def migrated() -> None:
        engine = create_engine(Settings(env="test", database_url=url))
        await migrate.upgrade(engine)
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrated())
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Sink:
    """Counts messages by Message-ID."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.original_content or envelope.content)
        self.counts[str(parsed["Message-ID"])] += 1
        self.last = time.perf_counter()
        self.first = self.first or self.last
        return "250 OK"

    def rate(self) -> float:
        """Messages per second between the first and the last arrival."""
        if self.first is None or self.last is None:
            return 0.0
        return (self.received - 1) / max(self.last - self.first, 1e-9)

    @property
    def received(self) -> int:
        return sum(self.counts.values())


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()
