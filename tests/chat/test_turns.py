"""A streamed answer does not wait for its question's commit.

Each test gets a PostgreSQL database of its own with a deferred constraint trigger on the
user's messages: it runs at COMMIT and waits for an advisory lock the test holds, so the
question's commit is slow for as long as the test likes (or, in the second test, fails once
released). SQLite has nothing that runs at commit, hence PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline import migrate
from backline.app import Backline
from backline.config import Settings
from backline.db import create_engine
from tests.chat.conftest import events, live, messages_of, signed_in
from tests.chat.upstream import Plan, Upstream
from tests.conftest import (
    _postgres_reachable,
    create_postgres_database,
    drop_postgres_database,
    unavailable,
)

App = Callable[[Settings], Backline]
pytestmark = pytest.mark.postgres
LOCK = 4242
SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({lock});
    {then}
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON chat_messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.role = 'user')
    EXECUTE FUNCTION slow_commit();
"""


async def _database(then: str) -> str:
    if reason := await _postgres_reachable():
        unavailable(reason)
    url = await create_postgres_database()
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await connection.execute(SLOW_COMMIT.format(lock=LOCK, then=then))
    finally:
        await connection.close()
    return url


@pytest.fixture
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    url = await _database(getattr(request, "param", ""))
    yield url
    await drop_postgres_database(url)


async def _held(url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    await connection.execute(f"SELECT pg_advisory_lock({LOCK})")
    return connection


async def _first_delta(stream: AsyncIterator[bytes]) -> bytes:
    received = b""
    async for chunk in stream:
        received += chunk
        if b"event: delta" in received:
            return received
    raise AssertionError("the stream ended without a delta")


async def _ask_while_held(client: Any, who: dict[str, str], url: str) -> tuple[list[Any], int]:
    """Ask with the question's commit held back; (events, messages visible while held)."""
    lock = await _held(url)
    try:
        async with client.stream("POST", "/api/chat", json={"message": "Hi"}, headers=who) as r:
            chunks = r.aiter_bytes()
            received = await asyncio.wait_for(_first_delta(chunks), 5)
            visible = await lock.fetchval("SELECT count(*) FROM chat_messages")
            await lock.execute(f"SELECT pg_advisory_unlock({LOCK})")
            async for chunk in chunks:
                received += chunk
    finally:
        await lock.close()
    return events(received.decode()), visible


async def test_the_answer_streams_while_the_question_is_being_committed(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    database_url: str,
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        found, visible = await _ask_while_held(client, who, database_url)
    assert visible == 0  # the first words came while the question was not yet committed
    assert found[-1][0] == "done"
    assert found[-1][1]["state"] == "complete"
    rows = await messages_of(engine)
    stored = [(m.role, m.content, m.state) for m in rows]
    assert stored == [("user", "Hi", "complete"), ("assistant", "Hello, artist!", "complete")]
    assert str(rows[0].conversation_id) == found[-1][1]["conversation_id"]


@pytest.mark.parametrize(
    "database_url", ["RAISE EXCEPTION 'refused at commit';"], indirect=True, ids=["refused"]
)
async def test_a_question_that_fails_to_commit_ends_the_answer_with_an_error(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    database_url: str,
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        found, _ = await _ask_while_held(client, who, database_url)
    assert found[-2][0] == "error"
    assert found[-2][1]["code"] == "chat_unavailable"
    assert found[-1][0] == "done"
    assert found[-1][1]["state"] == "cut"
    assert found[-1][1]["conversation_id"] is None
    assert await messages_of(engine) == []


@pytest.mark.parametrize(
    "database_url", ["RAISE EXCEPTION 'refused at commit';"], indirect=True, ids=["refused"]
)
async def test_a_question_that_fails_before_the_provider_answers_is_a_clean_503(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    database_url: str,
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(hold_headers=True))  # the provider thinks until the caller leaves
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
        # On PostgreSQL the question is one statement of its own and may fail before the
        # provider is even reached; a call that did reach it must be given up at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(upstream.closed_event.wait(), 2 if not upstream.seen else 5)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "chat_unavailable"
    assert upstream.closed_by_caller == len(upstream.seen) <= 1
    assert await messages_of(engine) == []
