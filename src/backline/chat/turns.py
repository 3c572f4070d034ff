"""One turn with the assistant, shared by `POST /api/chat` and the portal's chat page.

`prepare` checks that the assistant is configured, the message, and the limits, and reads what
is sent (the system prompt, the turns that fit, the new message): every refusal comes before
anything is stored. `store_question` writes the user's message in a short transaction of its
own, so no connection is held while the provider thinks. `answer_whole` waits for the whole
answer (`stream: false`, and the portal's form, within BACKLINE_CHAT_TIMEOUT), stores it and
counts its tokens; a streamed answer starts in `opening`.

However a turn ends, the conversation says so. An answer that never began (the provider failed
or timed out before its first byte, or the client left while it thought) is stored as an empty
assistant message marked `cut` (`store_unanswered`), so a question is never left standing
without a reply, and nothing the person asked is lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from backline.chat import context, limits, service
from backline.chat.provider import Provider, missing_setting, not_configured
from backline.config import Settings
from backline.db import Engines
from backline.errors import NotFound, Unprocessable
from backline.logging import get_logger
from backline.middleware.deadline import set_deadline
from backline.ratelimit.policies import Key

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

log = get_logger(__name__)
DEADLINE_MARGIN = 5.0  # past the chat's own limit, so that its 504 is the one the client sees


@dataclass(frozen=True)
class Turn:
    provider: Provider
    user_id: uuid.UUID
    conversation_id: uuid.UUID | None  # None: the question starts a new conversation
    text: str
    who: Mapping[Key, str]  # whose limits it counts against
    messages: list[ChatCompletionMessageParam]
    prompt: str  # what is sent, for estimating usage the provider does not report


def provider_of(request: Request, settings: Settings) -> Provider:
    """The configured provider; 503 `chat_not_configured` naming the variable to set."""
    provider: Provider | None = request.app.state.chat
    variable = missing_setting(settings)
    if provider is None or variable is not None:
        raise not_configured(variable or "BACKLINE_CHAT_BASE_URL")
    return provider


def checked_message(message: str, settings: Settings) -> str:
    if len(message) > settings.chat_max_message_chars:
        raise Unprocessable(
            f"The message is longer than {settings.chat_max_message_chars} characters.",
            code="message_too_long",
            max_chars=settings.chat_max_message_chars,
        )
    text = message.strip()
    if not text:
        raise Unprocessable("The message is empty.", code="message_empty")
    return text


async def _context(
    engines: Engines,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    text: str,
    budget: int,
) -> list[ChatCompletionMessageParam]:
    """What is sent: the system prompt, the turns that fit, the new message (one read, on an
    autocommit connection: no BEGIN or ROLLBACK to wait for); 404 for a conversation that
    is not the user's."""
    found = await context.read(engines.autocommit, user_id=user_id, conversation_id=conversation_id)
    if not found.owned:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return context.fit(found.system, found.turns, text, budget=budget)


async def _discard(task: asyncio.Task[Any]) -> None:
    """Let a task whose result is not wanted end (cancelled only if the wait is), and
    retrieve its outcome, so that nothing is left running or unreported."""
    try:
        await asyncio.wait({task})
    finally:
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()


async def prepare(
    request: Request,
    *,
    settings: Settings,
    user_id: uuid.UUID,
    message: str,
    conversation_id: uuid.UUID | None,
) -> Turn:
    """A turn ready to send; refusals (503, 422, 429, 404) before anything is stored.

    The limits are checked and the context read side by side: the turn waits for the slower
    of the two round trips, not both. A refused message is reported as such (429) whatever
    the read found."""
    provider = provider_of(request, settings)
    text = checked_message(message, settings)
    reading = asyncio.ensure_future(
        _context(
            request.app.state.engines,
            user_id=user_id,
            conversation_id=conversation_id,
            text=text,
            budget=settings.chat_context_tokens,
        )
    )
    try:
        who = await limits.admit(request)
    except BaseException:
        await _discard(reading)
        raise
    messages = await reading
    prompt = "".join(str(m.get("content", "")) for m in messages)
    return Turn(provider, user_id, conversation_id, text, who, messages, prompt)


async def write_question(db: AsyncSession | AsyncConnection, turn: Turn) -> uuid.UUID:
    """Add the user's message (not committed); the conversation's id."""
    return await service.ask(
        db, user_id=turn.user_id, conversation_id=turn.conversation_id, text=turn.text
    )


async def store_question(sessions: async_sessionmaker[AsyncSession], turn: Turn) -> uuid.UUID:
    """Store the user's message in a transaction of its own; the conversation's id."""
    async with sessions() as session, session.begin():
        return await write_question(session, turn)


async def store_unanswered(
    sessions: async_sessionmaker[AsyncSession], turn: Turn, conversation_id: uuid.UUID
) -> None:
    """Record that no answer came: an empty assistant message marked `cut`."""
    with anyio.CancelScope(shield=True):
        try:
            async with sessions() as session, session.begin():
                conversation = await service.own(
                    session, conversation_id=conversation_id, user_id=turn.user_id
                )
                await service.add_message(
                    session, conversation=conversation, role="assistant", content="", state="cut"
                )
        except Exception:
            log.exception("chat_store_failed")


async def answer_whole(
    request: Request, turn: Turn, *, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> dict[str, Any]:
    """Store the question, wait for the whole answer, store it, count its tokens; the
    `stream: false` answer of `POST /api/chat`."""
    conversation_id = await store_question(sessions, turn)
    set_deadline(request, settings.chat_timeout + DEADLINE_MARGIN)
    try:
        answer = await turn.provider.complete(turn.messages)
    except BaseException:
        await store_unanswered(sessions, turn, conversation_id)
        raise
    usage = answer.usage
    async with sessions() as session, session.begin():
        conversation = await service.own(
            session, conversation_id=conversation_id, user_id=turn.user_id
        )
        stored = await service.add_message(
            session,
            conversation=conversation,
            role="assistant",
            content=answer.text,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )
    tokens = usage.total if usage else context.estimate_tokens(turn.prompt + answer.text)
    await limits.spend(request.app.state.ratelimiter, turn.who, tokens)
    return {
        "conversation_id": str(conversation_id),
        "message_id": str(stored.id),
        "content": answer.text,
        "state": "complete",
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total,
        },
    }
