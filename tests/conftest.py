"""Fixtures shared by the whole suite.

Real engines throughout: a SQLite file per test, and the machine's PostgreSQL and Redis servers
when reachable. Each run gets its own PostgreSQL database and its own Redis key prefix, so runs
never see each other's data. Where a server is absent its tests skip with a one-line reason;
with BACKLINE_REQUIRE_SERVICES=1 (set by .ci/run) such a skip is a failure instead.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
import redis.asyncio
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from backline import migrate
from backline.accounts import service as accounts
from backline.accounts.models import Role, User
from backline.app import Backline, create_app
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.logging import configure_logging
from backline.models import metadata
from tests.s3servers import (
    STATE_VARIABLE,
    CephCluster,
    S3Server,
    make_state_dir,
    moto_server,
    radosgw_bucket,
    shared_cluster,
    stop_shared_cluster,
)

POSTGRES_ADMIN_URL = os.environ.get(
    "BACKLINE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("BACKLINE_REQUIRE_SERVICES") == "1"
RUN_ID = uuid.uuid4().hex[:10]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Every `async def` test runs on asyncio through anyio's plugin, without a marker each."""
    if collector.funcnamefilter(name) and inspect.iscoroutinefunction(obj):  # type: ignore[attr-defined]
        pytest.mark.anyio(obj)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


ENV_ALIASES = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "ALLOWED_ORIGINS", "RESEND_API_KEY")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own Backline settings (environment or `.env`)."""
    for name in list(os.environ):
        own = name.startswith("BACKLINE_") and not name.startswith("BACKLINE_TEST_")
        if (own and name != "BACKLINE_REQUIRE_SERVICES") or name in ENV_ALIASES:
            monkeypatch.delenv(name)


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (BACKLINE_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ----------------------------------------------------------------------------- PostgreSQL


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def create_postgres_database(prefix: str = "backline_test") -> str:
    """Create an empty database on the test server; returns its URL."""
    name = f"{prefix}_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return _with_database(POSTGRES_ADMIN_URL, name)


async def drop_postgres_database(url: str) -> None:
    name = url.rpartition("/")[2]
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _postgres_reachable() -> str | None:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable ({type(exc).__name__})"
    await connection.close()
    return None


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A migrated database of this run's own on the PostgreSQL server."""
    if reason := await _postgres_reachable():
        unavailable(reason)
    url = await create_postgres_database()
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_postgres_database(url)


# ----------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
async def redis_url() -> AsyncIterator[str]:
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, redis.exceptions.RedisError) as exc:
        await client.aclose()
        unavailable(f"Redis at {REDIS_URL} unreachable ({type(exc).__name__})")
    yield REDIS_URL
    async for key in client.scan_iter(match=f"backline-test-{RUN_ID}*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def redis_prefix() -> str:
    return f"backline-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"


def into_one_window(margin: float = 6.0) -> None:
    """Wait, if need be, until at least `margin` seconds of the clock's minute are left.

    The limiter's sliding-window counter weighs the previous window by how much of it still
    overlaps: a burst that straddles a minute boundary is counted approximately (one request
    more may pass). Hour and day windows begin on a minute boundary too, so a test that counts
    exact hits against any window runs its burst inside one minute.
    """
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


@pytest.fixture
def one_window() -> None:
    """The whole test (its app's start included) inside one minute: see `into_one_window`."""
    into_one_window()


# ----------------------------------------------------------------------------- settings & db


async def _migrated_sqlite(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(Settings(env="test", database_url=url))
    await migrate.upgrade(engine)
    await engine.dispose()
    return url


async def _emptied(url: str) -> None:
    engine = create_engine(Settings(env="test", database_url=url))
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(table.delete())
    await engine.dispose()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "var_dir": tmp_path / "var",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'test.db'}",
            "log_format": "json",
            "redis_prefix": f"backline-test-{RUN_ID}-{uuid.uuid4().hex[:6]}",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    """A migrated, empty SQLite database (the embedded default)."""
    return await _migrated_sqlite(tmp_path / "db.sqlite")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_server(request: pytest.FixtureRequest) -> str | None:
    """Each kind of database in turn: None for SQLite, else this run's PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def any_database_url(database_server: str | None, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database of each kind: SQLite, then this run's PostgreSQL database.

    A test module runs on both by overriding `database_url` with this fixture.
    """
    if database_server is None:
        yield await _migrated_sqlite(tmp_path / "db.sqlite")
        return
    yield database_server
    await _emptied(database_server)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Any]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


# ----------------------------------------------------------------------------- logs & app


class LogCapture:
    """The JSON log lines written while a test ran."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture()


@pytest.fixture
def app_factory(logs: LogCapture) -> Callable[[Settings], Backline]:
    def factory(settings: Settings) -> Backline:
        configure_logging(settings, stream=logs.stream)
        app = create_app(settings, configure_logs=False)
        from tests.support import router

        app.include_router(router)
        return app

    return factory


@pytest.fixture
async def app(
    app_factory: Callable[[Settings], Backline], settings: Settings
) -> AsyncIterator[Backline]:
    app = app_factory(settings)
    async with LifespanManager(app):
        yield app


@pytest.fixture
async def client(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# ----------------------------------------------------------------------------- people


DEFAULT_PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    user: User
    email: str
    password: str


@pytest.fixture
def make_user(engine: AsyncEngine) -> Callable[..., Any]:
    async def make(
        email: str = "ann@example.com",
        *,
        password: str = DEFAULT_PASSWORD,
        role: Role = Role.USER,
        verified: bool = True,
        display_name: str = "Ann",
    ) -> Account:
        async with create_sessionmaker(engine)() as session, session.begin():
            user = await accounts.create(
                session,
                email=email,
                password=password,
                display_name=display_name,
                role=role,
                verified=verified,
            )
        return Account(user, email, password)

    return make


# ----------------------------------------------------------------------------- a Redis to stop


class OwnRedis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


# ----------------------------------------------------------------------------- S3


BUCKET = "backline-test"
_OWN_CEPH_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The run's Ceph directory, made by the process that owns the xdist workers (see s3servers)."""
    if hasattr(config, "workerinput") or STATE_VARIABLE in os.environ:
        return
    directory = make_state_dir()
    os.environ[STATE_VARIABLE] = str(directory)  # the workers inherit it
    config.stash[_OWN_CEPH_DIR] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_OWN_CEPH_DIR, None)
    if directory is not None:
        stop_shared_cluster(directory)
        os.environ.pop(STATE_VARIABLE, None)


def _serving(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Backline finds S3 credentials where any AWS client does: the standard variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with moto_server(free_port(), BUCKET) as s3:
        yield _serving(s3, monkeypatch)


@pytest.fixture(scope="session")
def ceph_cluster() -> CephCluster:
    """The run's one Ceph cluster, whatever the number of xdist workers.

    Started on first use by whichever worker takes a file lock first, in a directory the
    controlling pytest process made and stops at the end of the run; or, with
    BACKLINE_TEST_CEPH_DIR naming one (`.ci/run`), a cluster already running. `tests.s3servers`
    has the details.
    """
    found = shared_cluster()
    if isinstance(found, str):
        unavailable(found)
    assert isinstance(found, CephCluster)
    return found


@pytest.fixture
def radosgw_s3(ceph_cluster: CephCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with radosgw_bucket(ceph_cluster) as s3:
        yield _serving(s3, monkeypatch)


# A test or fixture parametrized with these runs against each S3 server in turn.
S3_KINDS = ["moto", pytest.param("radosgw", marks=[pytest.mark.radosgw, pytest.mark.slow])]


@pytest.fixture(params=S3_KINDS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """An S3 server with an empty bucket of this test's own: moto, then radosgw."""
    s3: S3Server = request.getfixturevalue(f"{request.param}_s3")
    return s3
