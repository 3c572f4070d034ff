"""Migrations: upgrade -> downgrade -> upgrade on SQLite and PostgreSQL, and in step with models."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from backline import migrate
from backline.config import Settings
from backline.db import create_engine
from backline.models import metadata
from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture
async def empty_engine(database_server: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A database with no tables at all, of each kind."""
    if database_server is None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    else:
        url = await create_postgres_database("backline_migrations")
    engine = create_engine(Settings(env="test", database_url=url))
    yield engine
    await engine.dispose()
    if database_server is not None:
        await drop_postgres_database(url)


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(empty_engine: AsyncEngine) -> None:
    assert await migrate.current_revision(empty_engine) is None
    await migrate.upgrade(empty_engine)
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    assert await tables(empty_engine) == set(metadata.tables)

    await migrate.downgrade(empty_engine)
    assert await migrate.current_revision(empty_engine) is None
    assert await tables(empty_engine) == set()

    await migrate.upgrade(empty_engine)
    assert await tables(empty_engine) == set(metadata.tables)
    assert not await migrate.pending(empty_engine)


async def test_models_and_migrations_agree(empty_engine: AsyncEngine) -> None:
    await migrate.upgrade(empty_engine)

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        with warnings.catch_warnings():
            # SQLite cannot reflect the expression index on lower(email); PostgreSQL can.
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            return list(compare_metadata(context, metadata))

    async with empty_engine.connect() as connection:
        assert await connection.run_sync(diff) == []


def test_revisions_are_date_named_and_reversible() -> None:
    versions = Path(migrate.MIGRATIONS_DIR / "versions")
    files = sorted(p for p in versions.glob("*.py") if p.name != "__init__.py")
    assert files
    for path in files:
        assert path.name[:11].replace("_", "").isdigit(), path.name
        source = path.read_text()
        assert "def downgrade() -> None:" in source
        assert "    pass\n" not in source.split("def downgrade")[1]
