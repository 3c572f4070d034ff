"""Relaying one streamed answer from the provider to the client, then storing it.

`Relay.run(emit)` is what `streaming.EventStream` produces: it reads the provider's deltas,
forwards each as an event, sends keep-alives while the provider is silent, enforces the
first-byte, idle and total limits, and, however it ends (finished, provider failure,
timeout, client gone), closes the provider's response and stores the text streamed so far
as the assistant's message, `complete` or `cut`, and counts its tokens.

The question may still be being stored when the first deltas go out (see `opening`): the relay
waits for it only to store the answer, and ends the answer early if it could not be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.chat import limits, service
from backline.chat.context import estimate_tokens
from backline.chat.models import Conversation
from backline.chat.opening import QUESTION_LOST as LOST
from backline.chat.opening import QuestionNotStored
from backline.chat.provider import Usage, deltas
from backline.chat.streaming import KEEPALIVE, Emit, event
from backline.config import Settings
from backline.logging import get_logger
from backline.ratelimit.limiter import RateLimiter
from backline.ratelimit.policies import Key

if TYPE_CHECKING:
    from backline.chat.provider import Chunks

log = get_logger(__name__)
_END = object()
QUESTION_LOST = (QuestionNotStored.code, LOST)


async def _step(chunks: AsyncIterator[str | Usage]) -> object:
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return _END


@dataclass
class Relay:
    settings: Settings
    stream: Chunks
    sessionmaker: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    who: Mapping[Key, str]
    question: asyncio.Task[uuid.UUID]  # storing the question; gives the conversation's id
    prompt: str  # what was sent, for estimating usage the provider does not report
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    text: list[str] = field(default_factory=list)
    usage: Usage | None = None
    clock: Callable[[], float] = field(default_factory=lambda: asyncio.get_running_loop().time)
    _pending: asyncio.Task[object] | None = None  # the read from the provider under way

    async def run(self, emit: Emit) -> None:
        state, problem = "cut", None
        conversation_id: uuid.UUID | None = None
        try:
            problem = await self._relay(emit, deltas(self.stream).__aiter__())
            if problem is None:
                state = "complete"
        finally:
            # Whatever ended the relay (even a cancellation), the rest must still run.
            with anyio.CancelScope(shield=True):
                await self._close()
                conversation_id = await self._conversation()
                if conversation_id is None:
                    state, problem = "cut", problem or QUESTION_LOST
                else:
                    await self._store(conversation_id, state)
        if problem is not None:
            await emit(event("error", {"code": problem[0], "detail": problem[1]}))
        await emit(
            event(
                "done",
                {
                    "conversation_id": str(conversation_id) if conversation_id else None,
                    "message_id": str(self.message_id),
                    "state": state,
                    "usage": self._usage_json(),
                },
            )
        )

    async def _relay(
        self, emit: Emit, chunks: AsyncIterator[str | Usage]
    ) -> tuple[str, str] | None:
        """None when the answer finished, else the (code, detail) of what cut it."""
        import openai  # the stream's Provider has imported it

        settings = self.settings
        start = last = self.clock()
        first = True
        try:
            while True:
                if self._pending is None:
                    self._pending = asyncio.ensure_future(_step(chunks))
                pending = self._pending
                limit = min(
                    start + settings.chat_total_timeout,
                    start + settings.chat_first_byte_timeout
                    if first
                    else last + settings.chat_idle_timeout,
                )
                wait = min(limit - self.clock(), settings.chat_keepalive)
                done, _ = await asyncio.wait({pending}, timeout=max(0.0, wait))
                if not done:
                    if self.clock() >= limit:
                        raise TimeoutError
                    await emit(KEEPALIVE)
                    continue
                if self.question.done() and self.question.exception() is not None:
                    return QUESTION_LOST
                item, self._pending = pending.result(), None
                if item is _END:
                    return None
                first, last = False, self.clock()
                if isinstance(item, Usage):
                    self.usage = item
                elif isinstance(item, str):
                    self.text.append(item)
                    await emit(event("delta", {"text": item}))
        except (TimeoutError, openai.APITimeoutError):
            log.warning("chat_stream_timeout", first_byte=first)
            return "chat_upstream_timeout", "The assistant's provider stopped answering in time."
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a chunk that is not JSON
            log.warning("chat_stream_failed", error=type(exc).__name__)
            return "chat_upstream_error", "The assistant's provider failed mid-answer."

    async def _close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        # Closing the response closes its connection: the provider sees the client go.
        with contextlib.suppress(Exception):
            await self.stream.close()

    def _usage_json(self) -> dict[str, int] | None:
        if self.usage is None:
            return None
        return {
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "total_tokens": self.usage.total,
        }

    async def _conversation(self) -> uuid.UUID | None:
        try:
            return await self.question
        except Exception:
            log.exception("chat_question_not_stored")
            return None

    async def _store(self, conversation_id: uuid.UUID, state: str) -> None:
        text = "".join(self.text)
        usage = self.usage
        tokens = usage.total if usage else estimate_tokens(self.prompt) + estimate_tokens(text)
        try:
            async with self.sessionmaker() as session, session.begin():
                conversation = await session.get(Conversation, conversation_id)
                if conversation is not None:  # else deleted while the answer streamed
                    await service.add_message(
                        session,
                        conversation=conversation,
                        role="assistant",
                        content=text,
                        state=state,
                        prompt_tokens=usage.prompt_tokens if usage else None,
                        completion_tokens=usage.completion_tokens if usage else None,
                        message_id=self.message_id,
                    )
            await limits.spend(self.limiter, self.who, tokens)
        except Exception:
            log.exception("chat_store_failed")
        log.info("chat_answer", state=state, chars=len(text), tokens=tokens)
