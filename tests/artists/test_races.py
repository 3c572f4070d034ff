"""Concurrent requests on PostgreSQL: of two reviewers deciding at once exactly one wins, and
two applications sent at once by one person store one.

Each test holds a row lock from a connection of its own, sends both requests, waits until
both are queued behind that lock in the server, then lets go: the two really meet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from tests.accounts.conftest import bearer, login, outbox
from tests.artists.conftest import APPLICATION, applications, apply, audit_events
from tests.conftest import _emptied

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    yield postgres_url
    await _emptied(postgres_url)


async def waiting_on_locks(connection: asyncpg.Connection, count: int) -> None:
    """Until `count` other sessions wait for a lock (bounded: 500 looks)."""
    for _ in range(500):
        # Within a transaction the activity view is a snapshot: take a fresh one each look.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} requests never queued behind the lock")


@asynccontextmanager
async def row_locked(url: str, table: str, row_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of its own holding `FOR UPDATE` on one row, until the block ends."""
    connection = await asyncpg.connect(url, timeout=5)
    try:
        async with connection.transaction():
            await connection.execute(
                f"SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE",  # noqa: S608 - fixed names
                uuid.UUID(row_id),
            )
            yield connection
    finally:
        await connection.close()


async def test_two_reviewers_deciding_at_once_one_wins(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any, database_url: str
) -> None:
    await make_user("fan@example.com")
    await make_user("staff@example.com", role=Role.STAFF)
    await make_user("admin@example.com", role=Role.ADMIN)
    fan, staff, admin = [
        bearer(await login(client, f"{name}@example.com")) for name in ("fan", "staff", "admin")
    ]
    created = await apply(client, fan)
    path = f"/api/admin/artist-applications/{created['id']}"

    async with row_locked(database_url, "artist_applications", created["id"]) as lock:
        approving = asyncio.create_task(client.post(f"{path}/approve", headers=staff))
        rejecting = asyncio.create_task(
            client.post(f"{path}/reject", json={"reason": "Not for us."}, headers=admin)
        )
        await waiting_on_locks(lock, 2)
    answers = await asyncio.gather(approving, rejecting)

    assert sorted(answer.status_code for answer in answers) == [200, 409]
    [winner] = [answer.json() for answer in answers if answer.status_code == 200]
    [loser] = [answer.json() for answer in answers if answer.status_code == 409]
    assert loser["code"] == "already_decided"
    assert loser["application_status"] == winner["status"]
    [stored] = await applications(engine)
    assert stored.status == winner["status"]
    decisions = [e for e in await audit_events(engine) if e.event != "artist_application_submitted"]
    assert [e.event for e in decisions] == [f"artist_application_{winner['status']}"]
    mails = [m.template for m in await outbox(engine) if m.template != "application_received"]
    assert mails == [f"application_{winner['status']}"]
    role = (await client.get("/api/me", headers=fan)).json()["role"]
    assert role == ("artist" if winner["status"] == "approved" else "user")


async def test_two_applications_sent_at_once_store_one(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any, database_url: str
) -> None:
    account = await make_user("fan@example.com")
    fan = bearer(await login(client, "fan@example.com"))
    async with row_locked(database_url, "users", str(account.user.id)) as lock:
        sends = [
            asyncio.create_task(
                client.post("/api/artist-applications", json=APPLICATION, headers=fan)
            )
            for _ in range(2)
        ]
        await waiting_on_locks(lock, 2)
    answers = await asyncio.gather(*sends)
    assert sorted(answer.status_code for answer in answers) == [201, 409]
    assert [a.json()["code"] for a in answers if a.status_code == 409] == ["application_open"]
    assert len(await applications(engine)) == 1
    assert len(await outbox(engine, "application_received")) == 1
