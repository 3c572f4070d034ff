"""Shared by the fault and crash tests: a PostgreSQL database of the test's own, accounts in
it, and `backline serve` / `backline worker` processes started on it.

Every test here owns what it breaks: its own database (whose connections it may terminate),
its own Redis server, S3 server and SMTP server (which it may stop). The machine's shared
PostgreSQL and Redis servers are never stopped or reconfigured.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from backline import migrate
from backline.accounts import service as accounts
from backline.accounts.models import Role
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from tests.accounts.conftest import GENEROUS_LIMITS
from tests.conftest import (
    DEFAULT_PASSWORD,
    POSTGRES_ADMIN_URL,
    _postgres_reachable,
    create_postgres_database,
    drop_postgres_database,
    unavailable,
)
from tests.served import serve_env

SECRET = "a-signing-key-shared-by-every-process-0123456789"
LIMITS = json.dumps(GENEROUS_LIMITS)


@pytest.fixture
async def own_database() -> AsyncIterator[str]:
    """A migrated PostgreSQL database this test alone uses, dropped afterwards."""
    if reason := await _postgres_reachable():
        unavailable(reason)
    url = await create_postgres_database("backline_fault")
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_postgres_database(url)


async def terminate_connections(database_url: str) -> int:
    """End every server process connected to this database (and to no other); returns how many."""
    name = database_url.rpartition("/")[2]
    assert name.startswith("backline_fault_"), name  # never anybody else's database
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        ended = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await connection.close()
    return int(ended or 0)


async def add_account(database_url: str, email: str, *, role: Role = Role.USER) -> None:
    engine = create_engine(Settings(env="test", database_url=database_url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await accounts.create(
                session,
                email=email,
                password=DEFAULT_PASSWORD,
                display_name=email.partition("@")[0],
                role=role,
                verified=True,
            )
    finally:
        await engine.dispose()


async def sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        "/api/auth/login", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def settings_env(database_url: str, **more: str) -> dict[str, str]:
    """The environment of every process of one deployment under test."""
    return {
        "BACKLINE_ENV": "test",
        "BACKLINE_DATABASE_URL": database_url,
        "BACKLINE_SECRET_KEY": SECRET,
        "BACKLINE_RATE_LIMITS": LIMITS,
        "BACKLINE_LOG_LEVEL": "INFO",
        **more,
    }


def is_problem(response: httpx.Response, status: int, code: str) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and response.json().get("code") == code
    )


@dataclass
class Process:
    """A `backline` command running in the background, its output kept in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or recorded."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextmanager
def background(args: list[str], workdir: Path, name: str, **settings: str) -> Iterator[Process]:
    """Run `python -m backline ARGS` in `workdir` with only `settings` as Backline settings."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "backline", *args],
            cwd=workdir,
            env=serve_env(**settings),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = Process(process, log_path)
    try:
        yield running
    finally:
        running.stop()


def log_events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events
