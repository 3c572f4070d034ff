"""What a message waits on before its answer starts: one round trip to Redis for both limits,
one statement for the context, one for the question on PostgreSQL (two elsewhere)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from backline.app import Backline
from backline.chat import context, limits, service
from backline.chat.models import ChatMessage, Conversation
from backline.config import Settings
from backline.db import Engines, create_sessionmaker
from backline.errors import NotFound
from tests.chat.conftest import signed_in


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements `engine` runs meanwhile."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.mark.redis
async def test_both_limits_of_a_message_cost_one_round_trip(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    redis_url: str,
    redis_prefix: str,
) -> None:
    app = app_factory(chat_settings(redis_url=redis_url, redis_prefix=redis_prefix))
    async with LifespanManager(app):
        limiter = app.state.ratelimiter
        assert limiter.pipeliner is not None
        scope = {"type": "http", "app": app, "headers": [], "client": ("192.0.2.1", 1), "state": {}}
        request = Request(scope)
        request.state.user_id = uuid.uuid4()
        before = limiter.pipeliner.batches
        who = await limits.admit(request)
        assert limiter.pipeliner.batches - before == 1
        assert who == {"user": str(request.state.user_id)}
        reported = [d.policy for d in scope["state"]["ratelimit"]]  # type: ignore[index]
        assert sorted(reported) == ["chat_message", "chat_tokens"]


async def test_the_question_is_one_statement_on_postgresql_and_keeps_the_title(
    engine: AsyncEngine, make_user: Any
) -> None:
    ann = (await make_user("ann@example.com")).user
    bob = (await make_user("bob@example.com")).user
    expected = 1 if engine.dialect.name == "postgresql" else 2
    async with engine.connect() as connection:
        with counted(engine) as statements:
            first = await service.ask(connection, user_id=ann.id, conversation_id=None, text="Hi")
        assert len(statements) == expected
        with counted(engine) as statements:
            again = await service.ask(
                connection, user_id=ann.id, conversation_id=first, text="More"
            )
        assert again == first
        assert len(statements) == expected
        with pytest.raises(NotFound):  # not Bob's: nothing written
            await service.ask(connection, user_id=bob.id, conversation_id=first, text="Mine?")
        await connection.commit()
    async with create_sessionmaker(engine)() as session:
        conversation = await session.get(Conversation, first)
        assert conversation is not None
        assert conversation.title == "Hi"  # a follow-up leaves the title as it was
        assert conversation.updated_at > conversation.created_at
        rows = (await session.scalars(select(ChatMessage).order_by(ChatMessage.created_at))).all()
    assert [(m.role, m.content, m.state) for m in rows] == [
        ("user", "Hi", "complete"),
        ("user", "More", "complete"),
    ]


async def test_the_context_is_one_statement_and_only_the_owners(
    engine: AsyncEngine, make_user: Any
) -> None:
    ann = (await make_user("ann@example.com", display_name="Ann A")).user
    bob = (await make_user("bob@example.com")).user
    async with engine.connect() as connection:
        first = await service.ask(connection, user_id=ann.id, conversation_id=None, text="Hi")
        await service.ask(connection, user_id=ann.id, conversation_id=first, text="And then?")
        await connection.commit()
    autocommit = Engines.of(engine).autocommit
    with counted(engine) as statements:
        found = await context.read(autocommit, user_id=ann.id, conversation_id=first)
    assert len(statements) == 1
    assert found.owned
    assert found.turns == [("user", "Hi"), ("user", "And then?")]
    assert "Ann A" in found.system
    assert "Artist application: none sent yet." in found.system
    fresh = await context.read(autocommit, user_id=ann.id, conversation_id=None)
    assert fresh.owned
    assert fresh.turns == []
    other = await context.read(autocommit, user_id=bob.id, conversation_id=first)
    assert not other.owned
    assert other.turns == []
    assert "Ann A" not in other.system


async def test_a_streamed_question_on_postgresql_waits_on_no_begin_or_commit(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
) -> None:
    """Where the question is one statement, it runs as its own transaction (no BEGIN or COMMIT
    round trip to wait for); elsewhere its statements share a transaction."""
    app = app_factory(chat_settings())
    async with LifespanManager(app):
        engine: AsyncEngine = app.state.engine
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            who = await signed_in(client, make_user, "ann@example.com")
            writes: list[tuple[object, str]] = []

            def record(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
                if "INSERT INTO chat_conversations" in statement:
                    level = connection.get_execution_options().get("isolation_level")
                    writes.append((level, statement))

            event.listen(engine.sync_engine, "before_cursor_execute", record)
            try:
                response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert response.status_code == 200
        assert '"state":"complete"' in response.text
    assert len(writes) == 1
    if engine.dialect.name == "postgresql":
        assert writes[0][0] == "AUTOCOMMIT"
        assert "INSERT INTO chat_messages" in writes[0][1]  # the message in the same statement
    else:
        assert writes[0][0] is None
