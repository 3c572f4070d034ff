"""Key rotation over every registered encrypted column: complete, resumable, idempotent, and
checkable (`backline keys rotate [--check]`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from backline.accounts.models import Role
from backline.cli import app as cli
from backline.config import Settings
from backline.context import ClientInfo
from backline.crypto import KeyRing, generate_entry, key_id_of
from backline.db import create_sessionmaker
from backline.encrypted import census, registered, rotate
from backline.tax import service
from backline.tax.models import TaxForm
from backline.tax.schemas import TaxFormIn
from tests.tax.conftest import SSN_DIGITS, w9

OLD, NEW = generate_entry(), generate_entry()
OLD_ID, NEW_ID = OLD.partition(":")[0], NEW.partition(":")[0]
ROWS = 5


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
async def sealed_forms(engine: AsyncEngine, make_user: Callable[..., Any]) -> list[TaxForm]:
    """Five tax forms sealed under the old key alone."""
    ring = KeyRing.parse(OLD)
    made = []
    for n in range(ROWS):
        account = await make_user(f"a{n}@example.com", role=Role.ARTIST)
        async with create_sessionmaker(engine)() as session, session.begin():
            made.append(
                await service.submit(
                    session,
                    ring=ring,
                    user=account.user,
                    data=TaxFormIn.model_validate(w9()),
                    client=ClientInfo("127.0.0.1", None),
                )
            )
    return made


async def key_ids(engine: AsyncEngine) -> dict[str, int]:
    counts = await census(create_sessionmaker(engine), batch_size=3)
    total: dict[str, int] = {}
    for counter in counts.values():
        for key_id, count in counter.items():
            total[key_id] = total.get(key_id, 0) + count
    return total


async def readable(engine: AsyncEngine, ring: KeyRing) -> int:
    async with create_sessionmaker(engine)() as session:
        rows = (await session.scalars(select(TaxForm))).all()
    for form in rows:
        assert ring.open(form.tin, table="tax_forms", column="tin", row_id=form.id) == SSN_DIGITS
        service.public(ring, form)
    return len(rows)


def test_tax_forms_are_registered() -> None:
    assert ("tax_forms", ("tin", "details")) in [(e.name, e.columns) for e in registered()]


async def test_rotation_moves_every_value_to_the_newest_key(
    engine: AsyncEngine, sealed_forms: list[TaxForm]
) -> None:
    assert await key_ids(engine) == {OLD_ID: 2 * ROWS}
    ring = KeyRing.parse(f"{NEW},{OLD}")
    seen: list[int] = []
    result = await rotate(create_sessionmaker(engine), ring, batch_size=2, progress=seen.append)
    assert (result.rotated, result.current, result.failed) == (2 * ROWS, 0, [])
    assert seen == [2, 2, 1]
    assert await key_ids(engine) == {NEW_ID: 2 * ROWS}
    assert await readable(engine, KeyRing.parse(NEW)) == ROWS  # the old key is no longer needed
    again = await rotate(create_sessionmaker(engine), ring, batch_size=2)
    assert (again.rotated, again.current) == (0, 2 * ROWS)


class Interrupted(Exception):
    pass


async def test_an_interrupted_rotation_resumes(
    engine: AsyncEngine, sealed_forms: list[TaxForm]
) -> None:
    ring = KeyRing.parse(f"{NEW},{OLD}")

    def stop_after_first_batch(count: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await rotate(
            create_sessionmaker(engine), ring, batch_size=2, progress=stop_after_first_batch
        )
    assert await key_ids(engine) == {NEW_ID: 4, OLD_ID: 2 * ROWS - 4}  # the first batch held
    assert await readable(engine, ring) == ROWS
    result = await rotate(create_sessionmaker(engine), ring, batch_size=2)
    assert (result.rotated, result.current) == (2 * ROWS - 4, 4)
    assert await key_ids(engine) == {NEW_ID: 2 * ROWS}


async def test_an_undecryptable_value_is_reported_and_the_rest_rotates(
    engine: AsyncEngine, sealed_forms: list[TaxForm]
) -> None:
    damaged = sealed_forms[2]
    async with engine.begin() as connection:
        await connection.execute(
            update(TaxForm).where(TaxForm.id == damaged.id).values(tin=damaged.tin[:-1] + b"\0")
        )
    result = await rotate(create_sessionmaker(engine), KeyRing.parse(f"{NEW},{OLD}"))
    assert result.failed == [("tax_forms", "tin", str(damaged.id))]
    assert result.rotated == 2 * ROWS - 1
    assert key_id_of(damaged.tin) == OLD_ID


async def test_the_commands(
    engine: AsyncEngine,
    sealed_forms: list[TaxForm],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKLINE_ENV", "test")
    monkeypatch.setenv("BACKLINE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BACKLINE_ENCRYPTION_KEYS", f"{NEW},{OLD}")
    runner = CliRunner()

    async def run(*args: str) -> Any:  # each command runs its own event loop: give it a thread
        return await anyio.to_thread.run_sync(runner.invoke, cli, ["keys", *args])

    check = await run("rotate", "--check")
    assert check.exit_code == 1
    assert f"tax_forms.tin: {ROWS} under {OLD_ID}" in check.stderr
    assert f"{2 * ROWS} values are still under older keys" in check.stderr
    rotated = await run("rotate", "--batch-size", "2")
    assert rotated.exit_code == 0, rotated.output
    assert f"re-encrypted {2 * ROWS} values under {NEW_ID}" in rotated.stdout
    done = await run("rotate", "--check")
    assert done.exit_code == 0, done.output
    assert f"every encrypted value is under {NEW_ID}" in done.stdout
    generated = await run("generate")
    assert generated.exit_code == 0
    KeyRing.parse(generated.stdout.strip())


@pytest.mark.slow
@pytest.mark.parametrize("database_server", ["postgres"], indirect=True)
async def test_a_rotation_killed_halfway_resumes(
    engine: AsyncEngine, sealed_forms: list[TaxForm], settings: Settings, tmp_path: Path
) -> None:
    """`keys rotate` is killed (SIGKILL, no chance to clean up) while blocked on its third
    batch: the two batches before it stay rotated, and a second run finishes the rest."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BACKLINE_")},
        "BACKLINE_ENV": "test",
        "BACKLINE_DATABASE_URL": settings.database_url,
        "BACKLINE_ENCRYPTION_KEYS": f"{NEW},{OLD}",
        "BACKLINE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "backline", "keys", "rotate", "--batch-size", "1"]
    third = sorted(form.id for form in sealed_forms)[2]
    holder = await engine.connect()
    transaction = await holder.begin()
    await holder.execute(select(TaxForm.id).where(TaxForm.id == third).with_for_update())
    process = await anyio.open_process(command, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # bounded: 20 s at most
            if (await key_ids(engine)).get(NEW_ID) == 4 or process.returncode is not None:
                break
            await anyio.sleep(0.1)
        assert process.returncode is None, "the rotation ended instead of waiting on the lock"
        process.kill()
        with anyio.fail_after(10):
            await process.wait()
    finally:
        await transaction.rollback()
        await holder.close()
    assert await key_ids(engine) == {NEW_ID: 4, OLD_ID: 2 * ROWS - 4}
    finished = await anyio.to_thread.run_sync(
        partial(subprocess.run, command, env=env, cwd=tmp_path, capture_output=True, timeout=60)
    )
    assert finished.returncode == 0, finished.stderr
    assert await key_ids(engine) == {NEW_ID: 2 * ROWS}
    assert await readable(engine, KeyRing.parse(NEW)) == ROWS
