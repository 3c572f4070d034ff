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
from functools import lru_cache
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, String, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import User
from backline.artists.models import ArtistApplication
from backline.chat.models import ChatMessage
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


def _facts_query(user_id: uuid.UUID) -> Select[Any]:
    """The user's name, latest application and newest tracks in one query: one round trip
    instead of three, since every message waits on it before the provider is asked."""
    nothing = literal(None, String)
    name = select(
        literal("user").label("kind"),
        nothing.label("status"),
        nothing.label("reason"),
        User.display_name.label("title"),
        User.created_at.label("at"),
    ).where(User.id == user_id)
    application = (
        select(
            literal("application").label("kind"),
            ArtistApplication.status.label("status"),
            ArtistApplication.rejection_reason.label("reason"),
            nothing.label("title"),
            ArtistApplication.created_at.label("at"),
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
        )
        .where(Track.owner_id == user_id)
        .order_by(Track.created_at.desc())
        .limit(MAX_TRACKS)
        .subquery()
    )
    return select(union_all(name, select(application), select(tracks)).subquery())


async def facts(session: AsyncSession, *, user_id: uuid.UUID) -> tuple[str, str]:
    """The user's display name, and their application and track statuses one line each."""
    rows = (await session.execute(_facts_query(user_id))).all()
    name = next((row.title for row in rows if row.kind == "user"), "")
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
    return name, "\n".join(lines)


async def system_prompt(session: AsyncSession, *, user_id: uuid.UUID) -> str:
    name, statuses = await facts(session, user_id=user_id)
    return template().safe_substitute(display_name=name, statuses=statuses)


async def history(session: AsyncSession, *, conversation_id: uuid.UUID) -> list[ChatMessage]:
    """The conversation's past messages, oldest first (at most `MAX_TURNS`); an answer that
    never began (empty, `cut`) is left out: providers refuse an empty assistant turn."""
    rows = (
        await session.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation_id, ChatMessage.content != "")
            .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
            .limit(MAX_TURNS)
        )
    ).all()
    return list(reversed(rows))


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
