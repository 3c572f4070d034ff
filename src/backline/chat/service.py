"""Conversations and their messages: every read and change is scoped to the owner.

A conversation another user owns is reported exactly like one that does not exist (404), so
nobody can learn whether an id is in use. Functions take a session and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.chat.models import ChatMessage, Conversation
from backline.db import utcnow
from backline.errors import NotFound, Unprocessable
from backline.pagination import decode, encode, older_than

TITLE_CHARS = 80


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


async def ask(
    session: AsyncSession, *, user_id: uuid.UUID, conversation_id: uuid.UUID | None, text: str
) -> uuid.UUID:
    """Add the user's message to their conversation, or to a new one when none is named; the
    conversation's id. Two statements either way, as every message waits on them: a new
    conversation is inserted complete (no later UPDATE of its times), then its first message;
    a named one is touched by an UPDATE that also proves it is the user's (404
    `conversation_not_found` otherwise), then the message is inserted."""
    if conversation_id is None:
        now = utcnow()
        conversation = Conversation(
            id=uuid.uuid4(),
            user_id=user_id,
            title=title_for(text),
            created_at=now,
            updated_at=now,
        )
        session.add(conversation)
        await session.flush()  # first: the message's foreign key needs the row
        conversation_id = conversation.id
    else:
        touched = await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if touched.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("No such conversation.", code="conversation_not_found")
    session.add(
        ChatMessage(conversation_id=conversation_id, role="user", content=text, state="complete")
    )
    await session.flush()
    return conversation_id


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
