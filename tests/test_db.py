"""The database layer on SQLite and PostgreSQL: UTC timestamps, random keys, timeouts, pool."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import service as accounts
from backline.accounts.models import User
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def test_timestamps_round_trip_as_utc(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    paris = timezone(timedelta(hours=1))
    verified = datetime(2026, 3, 1, 12, 30, tzinfo=paris)
    async with sessions() as session, session.begin():
        user = await accounts.create(
            session, email="tz@example.com", password="long enough pw", display_name="Tz"
        )
        user.email_verified_at = verified
    async with sessions() as session:
        stored = (await session.execute(select(User))).scalar_one()
    assert stored.email_verified_at == verified
    assert stored.email_verified_at is not None
    assert stored.email_verified_at.tzinfo is not None
    assert stored.email_verified_at.utcoffset() == timedelta(0)
    assert stored.email_verified_at.hour == 11
    assert stored.created_at.tzinfo is not None
    assert abs(stored.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_naive_datetimes_are_refused(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        user = await accounts.create(
            session, email="naive@example.com", password="long enough pw", display_name="N"
        )
        user.email_verified_at = datetime(2026, 1, 1)
        with pytest.raises(StatementError, match="naive datetime"):
            await session.flush()
        await session.rollback()


async def test_primary_keys_are_random_uuids(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        created = [
            await accounts.create(
                session, email=f"u{i}@example.com", password="long enough pw", display_name="U"
            )
            for i in range(3)
        ]
    ids = [user.id for user in created]
    assert len(set(ids)) == 3
    assert all(isinstance(i, uuid.UUID) and i.version == 4 for i in ids)
    # Nothing sequential: consecutive IDs share no common prefix beyond chance.
    assert len({str(i)[:8] for i in ids}) == 3


async def test_email_is_unique_case_insensitively_even_around_the_service(
    engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await accounts.create(
            session, email="Case@Example.com", password="long enough pw", display_name="C"
        )
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            session.add(
                User(email="CASE@example.COM", display_name="D", password_hash="x", role="user")
            )


async def test_a_failing_statement_keeps_its_values_to_itself(engine: AsyncEngine) -> None:
    secret = "$argon2id$v=19$m=19456,t=2,p=1$c2VjcmV0$c2VjcmV0IGhhc2g"
    sessions = create_sessionmaker(engine)
    with pytest.raises(IntegrityError) as refused:
        async with sessions() as session, session.begin():
            session.add_all(
                User(email=email, display_name="S", password_hash=secret)
                for email in ("s@example.com", "S@example.com")
            )
    assert "users" in str(refused.value)  # the statement is named
    assert secret not in str(refused.value)
    assert "s@example.com" not in str(refused.value).lower()


async def test_unknown_roles_are_refused_by_the_database(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            session.add(
                User(email="r@example.com", display_name="R", password_hash="x", role="god")
            )


@pytest.mark.postgres
async def test_postgres_statements_time_out(postgres_url: str) -> None:
    engine = create_engine(
        Settings(env="test", database_url=postgres_url, db_statement_timeout=0.2)
    )
    try:
        async with engine.connect() as connection:
            shown = (await connection.execute(text("SHOW statement_timeout"))).scalar_one()
            assert shown == "200ms"
            began = time.monotonic()
            with pytest.raises(DBAPIError, match="statement timeout"):
                await connection.execute(text("SELECT pg_sleep(3)"))
            assert time.monotonic() - began < 2
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_pooled_connection_the_server_dropped_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle connections are pinged on checkout: one killed by the server (a restart, an idle
    timeout) is replaced, and the request using the pool never sees the failure."""
    from backline import db

    engine = create_engine(Settings(env="test", database_url=postgres_url))
    try:
        async with engine.connect() as connection:
            victim = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        killer = create_engine(Settings(env="test", database_url=postgres_url))
        async with killer.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        await killer.dispose()
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # as if it had sat idle for a while
        async with engine.connect() as connection:
            now = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert now != victim
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", 3600.0)  # a busy pool: no ping at all
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one() == now
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_steady_concurrency_reuses_the_pooled_connections(postgres_url: str) -> None:
    """Sixteen requests at a time, round after round, are served by the same connections: none
    is opened past the pool only to be closed on return (a new server process every time)."""
    engine = create_engine(Settings(env="test", database_url=postgres_url))
    backends: set[int] = set()

    async def one_request() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_sleep(0.01)"))
            backends.add((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    try:
        for _ in range(5):
            await asyncio.gather(*(one_request() for _ in range(16)))
        assert len(backends) <= 16
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_default_statement_timeout_is_five_seconds(postgres_url: str) -> None:
    engine = create_engine(Settings(env="test", database_url=postgres_url))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SHOW statement_timeout"))).scalar_one() == "5s"
    finally:
        await engine.dispose()


async def test_sqlite_enforces_foreign_keys_and_uses_wal(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'p.db'}"
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_libpq_style_url_connects(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgres://") + "?sslmode=disable&schema=public"
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SHOW search_path"))).scalar_one() == "public"
    finally:
        await engine.dispose()


async def test_read_sessions_autocommit(engine: AsyncEngine) -> None:
    """A read session holds no transaction open: what one statement does is already committed
    when the next runs (GET routes only read; this is why they need no BEGIN or COMMIT)."""
    from backline.db import Engines, create_read_sessionmaker

    reads = create_read_sessionmaker(Engines.of(engine))
    async with reads() as session:
        await session.execute(
            text(
                "INSERT INTO users (id, email, password_hash, display_name, role, created_at,"
                " updated_at) VALUES (:id, 'ac@example.com', 'x', 'Ac', 'user', :now, :now)"
            ),
            {
                "id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                "now": datetime.now(UTC),
            },
        )
        async with engine.connect() as other:
            seen = await other.scalar(text("SELECT count(*) FROM users"))
        assert seen == 1


async def test_run_once_gives_the_rows_and_the_connection_back(engine: AsyncEngine) -> None:
    from backline.db import Engines, run_once

    autocommit = Engines.of(engine).autocommit
    pool = engine.sync_engine.pool
    query = text("SELECT CAST(:a AS INTEGER) AS a UNION ALL SELECT CAST(:b AS INTEGER)")
    rows = await run_once(autocommit, query, {"a": 1, "b": 2})
    assert sorted(row.a for row in rows) == [1, 2]
    assert pool.checkedout() == 0
    with pytest.raises(DBAPIError):
        await run_once(autocommit, text("SELECT * FROM no_such_table"), {})
    assert pool.checkedout() == 0
    assert await run_once(autocommit, text("SELECT count(*) AS n FROM users"), {}) == [(0,)]


@pytest.mark.postgres
async def test_a_cancelled_run_once_stops_its_statement_and_returns_the_connection(
    postgres_url: str,
) -> None:
    from backline.db import Engines, run_once

    engine = create_engine(Settings(env="test", database_url=postgres_url))
    try:
        autocommit = Engines.of(engine).autocommit
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await run_once(autocommit, text("SELECT pg_sleep(5)"), {})
        assert time.monotonic() - began < 4
        assert engine.sync_engine.pool.checkedout() == 0
        sleeping = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE state = 'active' AND query = 'SELECT pg_sleep(5)'"
        )
        for _ in range(20):  # the server stops it too (the cancel request may land just after)
            if await run_once(autocommit, sleeping, {}) == [(0,)]:
                break
            await asyncio.sleep(0.1)
        assert await run_once(autocommit, sleeping, {}) == [(0,)]
    finally:
        await engine.dispose()
