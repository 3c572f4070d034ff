"""The database: declarative base, column types, engine and sessions.

* Primary keys are random UUIDs (version 4): nothing about one row's ID tells another's.
* Timestamps are timezone-aware UTC on the way in and out, on SQLite as on PostgreSQL.
* Constraint and index names follow one naming convention, so Alembic migrations are stable.
* On PostgreSQL (asyncpg) every statement has a server-side timeout (default 5 s), the pool
  pings a connection that sat idle before using it, connections identify themselves as
  `backline`, and a connection that fails because the server ended it (or whose protocol
  state that left unknown) is discarded with every other connection of the pool: the request
  that met it fails (503, see `errors`) and the next ones get new connections.
* On SQLite (the embedded default) foreign keys are enforced, the journal is WAL, and a writer
  waits up to the statement timeout for a lock.

Sessions never commit on their own: the caller owns the transaction (one per operation).
Requests that only read (GET, HEAD) get autocommit sessions (`create_read_sessionmaker`).
`Engines` holds the engine twice, as configured and in autocommit mode (one pool), for hot
paths that run Core statements on a connection of their own, without the ORM session's cost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic_core import from_json, to_json
from sqlalchemy import DateTime, MetaData, Uuid, event
from sqlalchemy.engine import Dialect, Engine, Row
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn

from backline import tracing
from backline.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.driver == "asyncpg":
            # asyncpg reads a timestamptz as an aware datetime in UTC already (every column
            # of this type is one): a call per value would change nothing.
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no offset: what was stored was UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _json_dumps(value: Any) -> str:
    return to_json(value).decode()


# JSON columns through pydantic-core's encoder and parser (Rust): a page of rows with JSON
# columns spends several times longer in the standard library's.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": from_json}
# Statement parameters carry password hashes, token digests and addresses: a database error
# names the statement, never its values (SQLAlchemy otherwise puts them in the exception).
HIDDEN = {"hide_parameters": True}


def create_engine(settings: Settings) -> AsyncEngine:
    engine = _create_engine(settings)
    tracing.instrument_engine(engine)  # a span per statement when tracing is on
    return engine


def _create_engine(settings: Settings) -> AsyncEngine:
    url = settings.db_url
    if url.startswith("sqlite"):
        if ":memory:" not in url and "///" in url:
            Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, connect_args={"timeout": settings.db_statement_timeout}, **JSON_CODEC, **HIDDEN
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    timeout_ms = int(settings.db_statement_timeout * 1000)
    server_settings = {
        "statement_timeout": str(timeout_ms),
        "idle_in_transaction_session_timeout": str(max(timeout_ms * 12, 60_000)),
        "application_name": "backline",
    }
    if settings.db_search_path:
        server_settings["search_path"] = settings.db_search_path
    engine = create_async_engine(
        url,
        **JSON_CODEC,
        **HIDDEN,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_statement_timeout,
        connect_args={
            "timeout": settings.db_statement_timeout,
            "server_settings": server_settings,
        },
    )
    event.listen(engine.sync_engine.pool, "checkin", _checked_in)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    event.listen(engine.sync_engine, "handle_error", _note_lost_connection)
    return engine


def _lost_connection(error: BaseException | None) -> bool:
    """Whether a driver error means the connection is gone, or in a state nobody knows.

    SQLAlchemy's asyncpg dialect asks the connection whether it is closed, which it may not
    know yet: the server's "terminating connection" message arrives before the socket closes,
    and a statement sent in between fails with a protocol error (`InternalClientError`,
    "another operation is in progress") on a connection that would go back to the pool."""
    import asyncpg

    for _ in range(4):  # the adapter's error, then the driver's, then the socket's
        if error is None:
            return False
        if isinstance(
            error,
            asyncpg.PostgresConnectionError  # class 08, ConnectionDoesNotExistError among them
            | asyncpg.AdminShutdownError
            | asyncpg.CrashShutdownError
            | asyncpg.CannotConnectNowError
            | asyncpg.InternalClientError
            | ConnectionError,
        ):
            return True
        error = error.__cause__
    return False


def _note_lost_connection(context: Any) -> None:
    if not context.is_disconnect and _lost_connection(context.original_exception):
        context.is_disconnect = True  # the pool discards it, and the connections made before it


# A connection back from the pool after a pause is pinged first, so one the server dropped
# meanwhile (a restart, an idle timeout, the network) is replaced before a request sees it.
# SQLAlchemy's pool_pre_ping does this on every checkout, a round trip on every request; a
# connection that was in use a moment ago is alive, so here only the idle ones are pinged.
IDLE_PING_SECONDS = 2.0


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    checked_in = record.info.get("checked_in_at")
    if checked_in is None or time.monotonic() - checked_in < IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception:
        raise DisconnectionError("the pooled connection was dropped") from None  # the pool
        # then discards it and checks out another


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_sessionmaker(
    engine: AsyncEngine, *, settings: Settings | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of `engine`; given `settings`, each session carries them in
    `session.info["settings"]` for code reached with a session alone (account deletion and
    export visit every domain so; see `accounts.holdings`)."""
    info = {"settings": settings} if settings is not None else None
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """`engine` (and its pool) in autocommit mode: each statement commits by itself, with no
    BEGIN and no COMMIT to wait for, and sees the latest committed data."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _rows(engine: Engine, statement: Executable, params: Mapping[str, Any]) -> list[Row[Any]]:
    with engine.connect() as connection:
        return list(connection.execute(statement, params).all())


async def run_once(
    engine: AsyncEngine, statement: Executable, params: Mapping[str, Any]
) -> list[Row[Any]]:
    """The rows of one statement, run on a connection of `engine`'s pool taken for it alone.

    The hot paths' single reads go this way (an autocommit engine: no BEGIN or ROLLBACK). An
    `AsyncConnection` crosses into SQLAlchemy's greenlet three times for the same work (to
    connect, to execute, to close, the close in a shielded task of its own); here the whole of
    it runs in one crossing, about a quarter less CPU per statement. A cancellation reaches the
    statement inside, and the connection goes back to the pool as it would from `async with`.
    """
    # `greenlet_spawn` is how SQLAlchemy's asyncio extension runs its synchronous core, as
    # `AsyncSession.run_sync` does: the statement's awaits happen in this task.
    return await greenlet_spawn(_rows, engine.sync_engine, statement, params)


@dataclass(frozen=True)
class Engines:
    """One engine as configured (`default`) and in autocommit mode (`autocommit`)."""

    default: AsyncEngine
    autocommit: AsyncEngine

    @classmethod
    def of(cls, engine: AsyncEngine) -> Engines:
        return cls(engine, autocommit_engine(engine))


def create_read_sessionmaker(
    engines: Engines, *, settings: Settings | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read, in autocommit mode."""
    info = {"settings": settings} if settings is not None else None
    return async_sessionmaker(
        engines.autocommit, expire_on_commit=False, autoflush=False, info=info
    )


def settings_of(session: AsyncSession) -> Settings:
    """The settings a session was made with (`create_sessionmaker(..., settings=...)`)."""
    settings = session.info.get("settings")
    if not isinstance(settings, Settings):
        raise RuntimeError("this session was made without settings")
    return settings


async def connection_of(db: AsyncSession | AsyncConnection) -> AsyncConnection:
    """The connection a Core statement runs on: a session's (in its transaction), or the one
    given. Core statements skip the ORM's execution machinery, which costs more than they do."""
    return await db.connection() if isinstance(db, AsyncSession) else db
