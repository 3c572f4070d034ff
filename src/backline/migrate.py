"""Schema migrations, driven from code (Alembic's command API on Backline's own engine).

Revision files are date-named (`2026_11_25_0001_users.py`) and each one is reversible;
the tests run upgrade -> downgrade -> upgrade on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(
    connection: Connection | None = None, *, storage_backend: str | None = None
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    config.attributes["storage_backend"] = storage_backend  # records where older objects live
    return config


async def _run(
    engine: AsyncEngine, action: str, revision: str, storage_backend: str | None = None
) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config(connection, storage_backend=storage_backend)
        getattr(command, action)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def upgrade(
    engine: AsyncEngine, revision: str = "head", *, storage_backend: str | None = None
) -> None:
    await _run(engine, "upgrade", revision, storage_backend)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def pending(engine: AsyncEngine) -> bool:
    return await current_revision(engine) != head_revision()
