"""What the assistant is sent: the system prompt, then as many recent turns as fit.

The system prompt is a versioned template (`prompts/system-<version>.txt`) filled with the
calling user's own facts: their latest artist application's status and their tracks' statuses,
with the reasons staff gave them (which they already see), never staff-only fields and never
anyone else's data. It is always sent. The conversation's turns follow, newest kept first:
when the token budget (BACKLINE_CHAT_CONTEXT_TOKENS) runs out the oldest turns are dropped.

Tokens are estimated (about four characters each) rather than counted with a tokenizer: each
provider's model has its own, and a budget only needs to be roughly right.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, Select, String, Uuid, bindparam, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.artists.models import ArtistApplication
from backline.chat.models import ChatMessage, Conversation
from backline.db import run_once
from backline.tracks.models import Track

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

PROMPT_VERSION = "v1"
MAX_TRACKS = 20
MAX_TURNS = 200  # read at most this many past messages; far more than any budget keeps


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 4  # four per message for the role and framing


@lru_cache(maxsize=4)
def template(version: str = PROMPT_VERSION) -> Template:
    text = files("backline.chat").joinpath(f"prompts/system-{version}.txt").read_text("utf-8")
    return Template(text)


@dataclass(frozen=True)
class Read:
    """What the database holds for one turn: the filled system prompt and the past turns
    (role, text), oldest first; `owned` is False when the named conversation is not the
    user's (or does not exist)."""

    system: str
    turns: list[tuple[str, str]]
    owned: bool


@lru_cache(maxsize=2)
def _read_query(named: bool) -> Select[Any]:
    """The user's name, latest application and newest tracks, and with a conversation named,
    whether it is theirs and its turns, in one query: one round trip instead of five, since
    every message waits on it before the provider is asked. Each row is a `kind` with the same
    six columns. Built once (the ids are parameters): building it costs more than running it."""
    nothing = literal(None, String)
    user_id = bindparam("user_id", type_=Uuid())
    conversation_id = bindparam("conversation_id", type_=Uuid())
    name = select(
        literal("user").label("kind"),
        nothing.label("status"),
        nothing.label("reason"),
        User.display_name.label("title"),
        User.created_at.label("at"),
        User.id.label("ref"),
    ).where(User.id == user_id)
    application = (
        select(
            literal("application").label("kind"),
            ArtistApplication.status.label("status"),
            ArtistApplication.rejection_reason.label("reason"),
            nothing.label("title"),
            ArtistApplication.created_at.label("at"),
            ArtistApplication.id.label("ref"),
        )
        .where(ArtistApplication.user_id == user_id)
        .order_by(ArtistApplication.created_at.desc())
        .limit(1)
        .subquery()
    )
    tracks = (
        select(
            literal("track").label("kind"),
            Track.status.label("status"),
            Track.rejection_reason.label("reason"),
            Track.title.label("title"),
            Track.created_at.label("at"),
            Track.id.label("ref"),
        )
        .where(Track.owner_id == user_id)
        .order_by(Track.created_at.desc())
        .limit(MAX_TRACKS)
        .subquery()
    )
    parts: list[Any] = [name, select(application), select(tracks)]  # rows of one shape
    if named:
        owner = select(
            literal("conversation").label("kind"),
            nothing.label("status"),
            nothing.label("reason"),
            nothing.label("title"),
            Conversation.created_at.label("at"),
            Conversation.id.label("ref"),
        ).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        # An answer that never began (empty, `cut`) is left out: providers refuse an empty
        # assistant turn. Only the owner's turns are read at all.
        turns = (
            select(
                literal("turn").label("kind"),
                ChatMessage.role.label("status"),
                nothing.label("reason"),
                ChatMessage.content.label("title"),
                ChatMessage.created_at.label("at"),
                ChatMessage.id.label("ref"),
            )
            .join(Conversation, Conversation.id == ChatMessage.conversation_id)
            .where(
                ChatMessage.conversation_id == conversation_id,
                Conversation.user_id == user_id,
                ChatMessage.content != "",
            )
            .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
            .limit(MAX_TURNS)
            .subquery()
        )
        parts += [owner, select(turns)]
    return select(union_all(*parts).subquery())


def _statuses(rows: Sequence[Row[Any]]) -> str:
    """The user's application and track statuses, one line each."""
    lines: list[str] = []
    application = next((row for row in rows if row.kind == "application"), None)
    if application is None:
        lines.append("- Artist application: none sent yet.")
    else:
        given = f" (reason given: {application.reason})" if application.reason else ""
        lines.append(f"- Artist application: {application.status}{given}.")
    tracks = sorted((row for row in rows if row.kind == "track"), key=lambda r: r.at, reverse=True)
    if not tracks:
        lines.append("- Tracks: none yet.")
    for track in tracks:
        why = f" (reason given: {track.reason})" if track.reason else ""
        lines.append(f'- Track "{track.title}": {track.status}{why}.')
    return "\n".join(lines)


async def read(
    engine: AsyncEngine, *, user_id: uuid.UUID, conversation_id: uuid.UUID | None
) -> Read:
    """The system prompt filled with the user's own facts, and the named conversation's past
    turns (at most `MAX_TURNS`), oldest first: one Core statement on a connection of its own
    (`db.run_once`; give an autocommit engine), no ORM session."""
    query = _read_query(conversation_id is not None)
    params = {"user_id": user_id, "conversation_id": conversation_id}
    rows = await run_once(engine, query, params)
    name = next((row.title for row in rows if row.kind == "user"), "")
    system = template().safe_substitute(display_name=name, statuses=_statuses(rows))
    turns = sorted((row for row in rows if row.kind == "turn"), key=lambda r: (r.at, r.ref))
    owned = conversation_id is None or any(row.kind == "conversation" for row in rows)
    return Read(system, [(row.status, row.title) for row in turns] if owned else [], owned)


def fit(
    system: str, turns: Sequence[tuple[str, str]], message: str, *, budget: int
) -> list[ChatCompletionMessageParam]:
    """System prompt, then the newest past turns that fit the budget, then the new message."""
    left = budget - estimate_tokens(system) - estimate_tokens(message)
    kept: list[ChatCompletionMessageParam] = []
    for role, content in reversed(turns):
        left -= estimate_tokens(content)
        if left < 0:
            break  # this turn and every older one are dropped
        if role == "assistant":
            kept.append({"role": "assistant", "content": content})
        else:
            kept.append({"role": "user", "content": content})
    return [
        {"role": "system", "content": system},
        *reversed(kept),
        {"role": "user", "content": message},
    ]
