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

from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.artists.models import ArtistApplication
from backline.chat.models import ChatMessage
from backline.tracks.models import Track

PROMPT_VERSION = "v1"
MAX_TRACKS = 20
MAX_TURNS = 200  # read at most this many past messages; far more than any budget keeps


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 4  # four per message for the role and framing


@lru_cache(maxsize=4)
def template(version: str = PROMPT_VERSION) -> Template:
    text = files("backline.chat").joinpath(f"prompts/system-{version}.txt").read_text("utf-8")
    return Template(text)


async def statuses(session: AsyncSession, *, user_id: uuid.UUID) -> str:
    """The user's own application and track statuses, one line each."""
    application = (
        await session.execute(
            select(ArtistApplication.status, ArtistApplication.rejection_reason)
            .where(ArtistApplication.user_id == user_id)
            .order_by(ArtistApplication.created_at.desc())
            .limit(1)
        )
    ).first()
    lines: list[str] = []
    if application is None:
        lines.append("- Artist application: none sent yet.")
    else:
        status, reason = application
        given = f" (reason given: {reason})" if reason else ""
        lines.append(f"- Artist application: {status}{given}.")
    tracks = (
        await session.execute(
            select(Track.title, Track.status, Track.rejection_reason)
            .where(Track.owner_id == user_id)
            .order_by(Track.created_at.desc())
            .limit(MAX_TRACKS)
        )
    ).all()
    if not tracks:
        lines.append("- Tracks: none yet.")
    for title, track_status, track_reason in tracks:
        why = f" (reason given: {track_reason})" if track_reason else ""
        lines.append(f'- Track "{title}": {track_status}{why}.')
    return "\n".join(lines)


async def system_prompt(session: AsyncSession, *, user_id: uuid.UUID, display_name: str) -> str:
    facts = await statuses(session, user_id=user_id)
    return template().safe_substitute(display_name=display_name, statuses=facts)


async def history(session: AsyncSession, *, conversation_id: uuid.UUID) -> list[ChatMessage]:
    """The conversation's past messages, oldest first (at most `MAX_TURNS`)."""
    rows = (
        await session.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation_id)
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
