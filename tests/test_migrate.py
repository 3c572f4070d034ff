"""Migrations: upgrade -> downgrade -> upgrade on SQLite and PostgreSQL, and in step with models."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
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


# ----------------------------------------------------------------------------- data migrations

TRACK_ROW = text(
    "INSERT INTO tracks (id, title, featured_artists, credits, status, created_at, updated_at,"
    " audio_key, audio_size, artwork_key)"
    " VALUES (:id, :title, '[]', '[]', 'draft', :now, :now, :audio_key, :audio_size, :artwork_key)"
)
ROWS = {
    "both": ("audio/ab/" + "a" * 32 + ".wav", 1000, "artwork/cd/" + "c" * 32 + ".png"),
    "audio": ("audio/ef/" + "e" * 32 + ".wav", 2000, None),
    "neither": (None, None, None),
}


async def track_rows(engine: AsyncEngine) -> dict[str, tuple[Any, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT title, audio_backend, artwork_backend, audio_size FROM tracks")
        )
        return {title: tuple(rest) for title, *rest in rows}


async def test_0005_records_each_objects_backend_with_rows_in_place(
    empty_engine: AsyncEngine,
) -> None:
    await migrate.upgrade(empty_engine, "0004")
    async with empty_engine.begin() as connection:
        for title, (audio_key, audio_size, artwork_key) in ROWS.items():
            await connection.execute(
                TRACK_ROW,
                {
                    "id": str(uuid.uuid4())
                    if empty_engine.dialect.name == "sqlite"
                    else uuid.uuid4(),
                    "title": title,
                    "now": datetime.now(UTC),
                    "audio_key": audio_key,
                    "audio_size": audio_size,
                    "artwork_key": artwork_key,
                },
            )

    await migrate.upgrade(empty_engine, "0005", storage_backend="s3")
    assert await track_rows(empty_engine) == {
        "both": ("s3", "s3", 1000),
        "audio": ("s3", None, 2000),
        "neither": (None, None, None),
    }

    # Refused while a track holds audio 0004's 32-bit column cannot record; nothing changes.
    async with empty_engine.begin() as connection:
        await connection.execute(
            text("UPDATE tracks SET audio_size = 3221225472 WHERE title = 'both'")
        )
    with pytest.raises(RuntimeError, match="1 tracks hold audio over 2 GiB"):
        await migrate.downgrade(empty_engine, "0004")
    assert await migrate.current_revision(empty_engine) == "0005"
    assert (await track_rows(empty_engine))["both"] == ("s3", "s3", 3221225472)

    # At exactly the 32-bit limit it goes down, keeping every row and size.
    async with empty_engine.begin() as connection:
        await connection.execute(
            text("UPDATE tracks SET audio_size = 2147483647 WHERE title = 'both'")
        )
    await migrate.downgrade(empty_engine, "0004")
    assert await migrate.current_revision(empty_engine) == "0004"
    async with empty_engine.connect() as connection:
        rows = await connection.execute(text("SELECT title, audio_size FROM tracks"))
        sizes = dict(rows.all())
    assert sizes == {"both": 2147483647, "audio": 2000, "neither": None}

    # Upgraded without a backend named (not through `backline migrate`), the columns stay
    # empty: the code reads that as the primary backend.
    await migrate.upgrade(empty_engine, "0005")
    assert await track_rows(empty_engine) == {
        "both": (None, None, 2147483647),
        "audio": (None, None, 2000),
        "neither": (None, None, None),
    }
    await migrate.upgrade(empty_engine)
    assert not await migrate.pending(empty_engine)
