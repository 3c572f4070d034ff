"""Retention: superseded forms are kept for BACKLINE_TAX_RETENTION_YEARS, then purged; an
account's deletion keeps its forms within retention, sealed and detached, and drops the rest."""

from __future__ import annotations

from datetime import timedelta

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from backline.cli import app as cli
from backline.config import Settings
from backline.db import create_sessionmaker, utcnow
from backline.tax import service
from backline.tax.models import TaxForm
from tests.conftest import DEFAULT_PASSWORD
from tests.tax.conftest import SSN_DIGITS, forms, w9

Person = tuple[str, dict[str, str]]


async def age(engine: AsyncEngine, form_id: object, *, days: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(TaxForm)
            .where(TaxForm.id == form_id)
            .values(superseded_at=utcnow() - timedelta(days=days))
        )


async def test_purge_deletes_only_forms_superseded_past_retention(
    client: httpx.AsyncClient, artist: Person, engine: AsyncEngine, settings: Settings
) -> None:
    for city in ("A", "B", "C"):
        await client.put("/api/me/tax-form", json=w9(city=city), headers=artist[1])
    oldest, middle, current = await forms(engine)
    await age(engine, oldest.id, days=4 * 366 + 1)
    await age(engine, middle.id, days=4 * 365 - 30)
    async with create_sessionmaker(engine)() as session, session.begin():
        assert await service.purge(session, years=settings.tax_retention_years) == 1
    assert [f.id for f in await forms(engine)] == [middle.id, current.id]
    async with create_sessionmaker(engine)() as session, session.begin():
        assert await service.purge(session, years=settings.tax_retention_years) == 0
    got = await client.get("/api/me/tax-form", headers=artist[1])
    assert got.json()["city"] == "C"


async def test_the_purge_command_reports_its_count(
    client: httpx.AsyncClient,
    artist: Person,
    engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for city in ("A", "B"):
        await client.put("/api/me/tax-form", json=w9(city=city), headers=artist[1])
    oldest, _ = await forms(engine)
    await age(engine, oldest.id, days=3 * 366)
    monkeypatch.setenv("BACKLINE_ENV", "test")
    monkeypatch.setenv("BACKLINE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BACKLINE_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("BACKLINE_TAX_RETENTION_YEARS", "2")
    # The command runs its own event loop: give it a thread.
    result = await anyio.to_thread.run_sync(CliRunner().invoke, cli, ["tax", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1 tax form superseded more than 2 years ago" in result.stdout
    assert len(await forms(engine)) == 1


async def test_deletion_keeps_forms_within_retention_detached_and_sealed(
    client: httpx.AsyncClient, artist: Person, engine: AsyncEngine, settings: Settings
) -> None:
    for city in ("A", "B", "C"):
        await client.put("/api/me/tax-form", json=w9(city=city), headers=artist[1])
    expired, kept, current = await forms(engine)
    await age(engine, expired.id, days=5 * 366)
    export = await client.get("/api/me/export", headers=artist[1])
    assert export.json()["tax_form"]["tin"] == "***-**-7386"

    response = await client.request(
        "DELETE", "/api/me", json={"password": DEFAULT_PASSWORD}, headers=artist[1]
    )
    assert response.status_code == 204, response.text
    remaining = await forms(engine)
    assert [f.id for f in remaining] == [kept.id, current.id]
    assert all(f.user_id is None for f in remaining)
    assert all(f.superseded_at is not None for f in remaining)
    ring = settings.key_ring
    for form in remaining:  # still sealed, and still readable for the retention period
        assert SSN_DIGITS.encode() not in form.tin
        assert ring.open(form.tin, table="tax_forms", column="tin", row_id=form.id) == SSN_DIGITS
