"""What the benchmarks share: a throwaway PostgreSQL database, an SMTP sink on loopback, and
where the CPU went (Linux's /proc)."""

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
from pathlib import Path
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


_TICK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _cpu(stat: Path) -> float:
    """User plus system CPU seconds of a process or thread, 0 when it is gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _named(prefix: str) -> list[Path]:
    """The /proc entries of the processes whose name starts with `prefix`."""
    found = []
    for entry in _PROC.iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().startswith(prefix):
                found.append(entry)
        except OSError:
            continue
    return found


def _machine_busy() -> float:
    """CPU seconds this machine's cores have spent on anything but waiting, since boot (time
    the hypervisor gave other guests, `steal`, is not this machine's)."""
    fields = [int(value) for value in (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / _TICK


class CpuMeter:
    """CPU seconds spent between `start` and `stop` by a server's event loop (its main thread),
    its other threads, PostgreSQL (all its processes) and Redis, all on this machine; and, in
    `parts`, by everything else (`other`: the load generator, the kernel's share of loopback
    traffic that no process is charged with, any other process)."""

    def __init__(self, server_pid: int) -> None:
        self.server = _PROC / str(server_pid)
        self.spent: Counter[str] = Counter()
        self._began: dict[str, float] = {}

    def _processes(self) -> dict[str, float]:
        threads = list((self.server / "task").iterdir()) if self.server.exists() else []
        main = [t for t in threads if t.name == self.server.name]
        return {
            "loop": sum(_cpu(t / "stat") for t in main),
            "threads": sum(_cpu(t / "stat") for t in threads if t not in main),
            "postgres": sum(_cpu(p / "stat") for p in _named("postgres")),
            "redis": sum(_cpu(p / "stat") for p in _named("redis-server")),
        }

    def start(self) -> None:
        # The machine is read last here and first in `stop`: the meter's own reading of /proc
        # falls outside the window.
        self._began = {**self._processes(), "machine": _machine_busy()}

    def stop(self) -> None:
        for part, seconds in {"machine": _machine_busy(), **self._processes()}.items():
            self.spent[part] += max(0.0, seconds - self._began.get(part, seconds))

    def parts(self) -> dict[str, float]:
        """CPU seconds by part over every window so far, `other` included."""
        parts = {part: seconds for part, seconds in self.spent.items() if part != "machine"}
        parts["other"] = max(0.0, self.spent["machine"] - sum(parts.values()))
        return parts
