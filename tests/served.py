"""A real `backline serve` process for tests of HTTP behaviour over a socket.

`served(workdir, ...)` starts `python -m backline serve` on a free loopback port, with its own
working directory (SQLite database, signing key and storage all under it) and only the
environment given, waits until `/healthz` answers, and stops it with SIGINT afterwards. Its
standard error is kept in a file, so a test can assert on what the server logged.

`server` picks the HTTP server (`serve --server`): tests of what the server itself does
(timeouts, the connection cap, HEAD, ranges, bodies, shutdown, workers) run under each of
`SERVERS`; every other test runs under `DEFAULT_SERVER`, which is uvicorn unless
`BACKLINE_TEST_SERVER` names another (`BACKLINE_TEST_SERVER=granian pytest tests/resilience`
runs those under Granian).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from tests.conftest import free_port

SERVERS = ("uvicorn", "granian")
DEFAULT_SERVER = os.environ.get("BACKLINE_TEST_SERVER", "uvicorn")
assert DEFAULT_SERVER in SERVERS, f"BACKLINE_TEST_SERVER={DEFAULT_SERVER!r}: one of {SERVERS}"
START_SECONDS = 90  # for each worker process: they import the app side by side, on busy cores


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.workdir / 'var' / 'backline.db'}"

    @property
    def output(self) -> str:
        """Everything the server wrote so far (standard output and error)."""
        return self.log_path.read_text(errors="replace")

    def connect(self, timeout: float = 5) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def serve_env(**settings: str) -> dict[str, str]:
    """The test process's environment without any Backline setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLINE_")}
    for alias in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "ALLOWED_ORIGINS", "RESEND_API_KEY"):
        env.pop(alias, None)
    env.update({"BACKLINE_LOG_FORMAT": "json", **settings})
    return env


@contextmanager
def served(
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    server: str | None = DEFAULT_SERVER,
    start_seconds: float = START_SECONDS,
    **settings: str,
) -> Iterator[Served]:
    """Run `backline serve --host HOST --workers N --server SERVER` in `workdir` with
    `settings` (environment variables, `BACKLINE_*` names mostly), on `port` when given (a test
    that must name the server's URL in a setting picks it first), waiting up to
    `start_seconds` for each worker. `server=None` passes no `--server`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "backline", "serve", "--host", host),
                *("--port", str(port), "--workers", str(workers)),
                *(("--server", server) if server else ()),
            ],
            cwd=workdir,
            env=serve_env(**settings),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Served(process, port, workdir, log_path)
    try:
        _wait_until_healthy(server, start_seconds * workers)
        yield server
    finally:
        server.stop()


def _wait_until_healthy(server: Served, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert server.process.poll() is None, f"backline serve exited:\n{server.output}"
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"backline serve did not start:\n{server.output}"
        time.sleep(0.05)


def create_user(server: Served, email: str, *, role: str = "user") -> dict[str, str]:
    """A verified user in the served database; answers a bearer header from a real login."""
    import asyncio

    from backline.accounts import service as accounts
    from backline.accounts.models import Role
    from backline.config import Settings
    from backline.db import create_engine, create_sessionmaker
    from tests.conftest import DEFAULT_PASSWORD

    async def create() -> None:
        engine = create_engine(Settings(env="test", database_url=server.database_url))
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await accounts.create(
                    session,
                    email=email,
                    password=DEFAULT_PASSWORD,
                    display_name=email.partition("@")[0],
                    role=Role(role),
                    verified=True,
                )
        finally:
            await engine.dispose()

    asyncio.run(create())
    response = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": email, "password": DEFAULT_PASSWORD},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def read_response(reader: BinaryIO, *, head: bool = False) -> RawResponse:
    """One HTTP/1.1 response from a socket's file: the status, the headers, and the body its
    Content-Length announces (none after a HEAD, whose headers describe the GET's body)."""
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    for _ in range(200):
        line = reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    return RawResponse(int(status_line.split()[1]), headers, reader.read(length))
