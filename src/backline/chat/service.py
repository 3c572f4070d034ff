"""Conversations and their messages: every read and change is scoped to the owner.

A conversation another user owns is reported exactly like one that does not exist (404), so
nobody can learn whether an id is in use. Functions take a session and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Executable,
    String,
    Text,
    Uuid,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert, Update

from backline.chat.models import ChatMessage, Conversation
from backline.db import UTCDateTime, connection_of, utcnow
from backline.errors import NotFound, Unprocessable
from backline.pagination import decode, encode, older_than

TITLE_CHARS = 80
# Where a `WITH` may hold an INSERT or UPDATE whose rows the main statement reads.
ONE_STATEMENT_DIALECTS = frozenset({"postgresql"})


def title_for(message: str) -> str:
    words = " ".join(message.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1] + "…"


async def own(
    session: AsyncSession, *, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return conversation


@lru_cache(maxsize=4)
def _ask_statements(new: bool, one_statement: bool) -> tuple[Executable, ...]:
    """What `ask` runs, built once (the values are parameters, none named like a column: a
    parameter named so would be added to an UPDATE's SET): its parent row (a new
    conversation inserted whole, or the named one's time touched, which also proves it is
    the user's), then the message. On PostgreSQL both are one statement (the parent in a
    `WITH`), and the message is inserted only if the parent row was."""
    cid, owner = bindparam("cid", type_=Uuid()), bindparam("owner", type_=Uuid())
    now, mid = bindparam("now", type_=UTCDateTime()), bindparam("mid", type_=Uuid())
    text = bindparam("text", type_=Text())
    if new:
        parent: Insert | Update = insert(Conversation).values(
            id=cid,
            user_id=owner,
            title=bindparam("heading", type_=String()),
            created_at=now,
            updated_at=now,
        )
    else:
        parent = (
            update(Conversation)
            .where(Conversation.id == cid, Conversation.user_id == owner)
            .values(updated_at=now)
        )
    columns = ["id", "conversation_id", "role", "content", "state", "created_at"]
    if not one_statement:
        question = insert(ChatMessage).values(
            id=mid,
            conversation_id=cid,
            role=bindparam("asker", type_=String()),
            content=text,
            state=bindparam("question_state", type_=String()),
            created_at=now,
        )
        return parent, question
    written = parent.returning(Conversation.id).cte("parent")
    role, state = bindparam("asker", type_=String()), bindparam("question_state", type_=String())
    row = select(mid, written.c.id, role, text, state, now)
    return (insert(ChatMessage).add_cte(written).from_select(columns, row),)


async def ask(
    db: AsyncSession | AsyncConnection,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    text: str,
) -> uuid.UUID:
    """Add the user's message to their conversation, or to a new one when none is named; the
    conversation's id. A named conversation that is not the user's is 404
    `conversation_not_found`, and nothing is written.

    Every message waits on this before its answer is relayed, so it is Core, not the ORM's
    unit of work: one statement on PostgreSQL, two elsewhere (a new conversation is inserted
    complete, with no later UPDATE of its times)."""
    connection = await connection_of(db)
    params = {
        "cid": conversation_id or uuid.uuid4(),
        "owner": user_id,
        "heading": title_for(text),
        "now": utcnow(),
        "mid": uuid.uuid4(),
        "text": text,
        "asker": "user",
        "question_state": "complete",
    }
    statements = _ask_statements(
        conversation_id is None, connection.dialect.name in ONE_STATEMENT_DIALECTS
    )
    for statement in statements:
        written = await connection.execute(statement, params)
        if written.rowcount != 1:
            raise NotFound("No such conversation.", code="conversation_not_found")
    cid: uuid.UUID = params["cid"]  # type: ignore[assignment]
    return cid


async def add_message(
    session: AsyncSession,
    *,
    conversation: Conversation,
    role: str,
    content: str,
    state: str = "complete",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    message_id: uuid.UUID | None = None,
) -> ChatMessage:
    message = ChatMessage(
        id=message_id or uuid.uuid4(),
        conversation_id=conversation.id,
        role=role,
        content=content,
        state=state,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
    session.add(message)
    conversation.updated_at = utcnow()
    await session.flush()
    return message


async def rename(session: AsyncSession, *, conversation: Conversation, title: str) -> None:
    """Give the conversation a title of the person's own (whitespace runs become one space)."""
    cleaned = " ".join(title.split())
    if not cleaned:
        raise Unprocessable("The title is empty.", code="title_empty")
    conversation.title = cleaned
    await session.flush()


async def page(
    session: AsyncSession, *, user_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[Sequence[Conversation], str | None]:
    """The user's conversations, newest first, a page at a time."""
    query = select(Conversation).where(Conversation.user_id == user_id)
    if cursor is not None:
        query = query.where(older_than(Conversation.created_at, Conversation.id, decode(cursor)))
    query = query.order_by(Conversation.created_at.desc(), Conversation.id.desc())
    rows = (await session.scalars(query.limit(limit + 1))).all()
    shown = rows[:limit]
    more = len(rows) > limit and shown
    return shown, encode(shown[-1].created_at, shown[-1].id) if more else None


async def messages(session: AsyncSession, *, conversation_id: uuid.UUID) -> Sequence[ChatMessage]:
    return (
        await session.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation_id)
            .order_by(ChatMessage.created_at, ChatMessage.id)
        )
    ).all()


async def remove(session: AsyncSession, *, conversation: Conversation) -> None:
    await session.execute(delete(ChatMessage).where(ChatMessage.conversation_id == conversation.id))
    await session.delete(conversation)
    await session.flush()


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def message_json(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "state": message.state,
        "created_at": message.created_at.isoformat(),
    }


async def export(session: AsyncSession, *, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (
        await session.scalars(
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.created_at, Conversation.id)
        )
    ).all()
    return [
        {
            **conversation_json(row),
            "messages": [message_json(m) for m in await messages(session, conversation_id=row.id)],
        }
        for row in rows
    ]


async def erase(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    rows = (
        await session.scalars(select(Conversation).where(Conversation.user_id == user_id))
    ).all()
    for row in rows:
        await remove(session, conversation=row)
    return len(rows)
