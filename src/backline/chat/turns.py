"""One turn of a conversation: the question stored, the provider asked, the answer kept.

The route has checked the message and the limits and read the context; a `Turn` does the rest.
The question is written in a short transaction of its own (no connection is held while the
provider thinks). For a streamed answer the provider is asked first; the question is written
meanwhile, and committed while the answer starts: what a commit costs (a disk flush on
PostgreSQL) is not added to the time to the first word. The route waits for the question to
be written (its connection taken) before it relays anything, so that under load new answers
queue for the database rather than the database for a busy event loop. The relay waits for
the commit only when it stores the answer, and stops early, with an error event, if the
question could not be stored.

However a turn ends, the conversation says so. An answer that never began (the provider failed
or timed out before its first byte, or the client left while it thought) is stored as an empty
assistant message marked `cut`, so the question is never left standing without a reply, and
nothing the person asked is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from fastapi import Request
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.chat import service
from backline.chat.provider import Chunks, Completion, Provider
from backline.errors import ServiceUnavailable
from backline.logging import get_logger

log = get_logger(__name__)
QUESTION_LOST = "The conversation could not be saved; please ask again."


class QuestionNotStored(ServiceUnavailable):
    code = "chat_unavailable"


@dataclass
class Turn:
    sessions: async_sessionmaker[AsyncSession]
    provider: Provider
    user_id: uuid.UUID
    conversation_id: uuid.UUID | None  # None: the question starts a new conversation
    text: str
    messages: Sequence[ChatCompletionMessageParam]

    async def store_question(self) -> uuid.UUID:
        """Store the user's message in a transaction of its own; the conversation's id."""
        async with self.sessions() as session, session.begin():
            return await self._ask(session)

    async def _ask(self, session: AsyncSession) -> uuid.UUID:
        return await service.ask(
            session, user_id=self.user_id, conversation_id=self.conversation_id, text=self.text
        )

    async def store_unanswered(self, conversation_id: uuid.UUID) -> None:
        """Record that no answer came: an empty assistant message marked `cut`."""
        with anyio.CancelScope(shield=True):
            try:
                async with self.sessions() as session, session.begin():
                    conversation = await service.own(
                        session, conversation_id=conversation_id, user_id=self.user_id
                    )
                    await service.add_message(
                        session,
                        conversation=conversation,
                        role="assistant",
                        content="",
                        state="cut",
                    )
            except Exception:
                log.exception("chat_store_failed")

    async def complete(self) -> tuple[uuid.UUID, Completion]:
        """The whole answer at once (`stream: false`): the conversation's id and the answer."""
        conversation_id = await self.store_question()
        try:
            return conversation_id, await self.provider.complete(self.messages)
        except BaseException:
            await self.store_unanswered(conversation_id)
            raise

    async def open(self, request: Request) -> tuple[asyncio.Task[uuid.UUID], Chunks | None]:
        """Ask the provider and write the question side by side; then wait for the provider
        while the question commits.

        Returns the storing task and the opened stream, or None for the stream when the client
        left before the provider answered (its call is then abandoned at once). A provider
        failure, or a question that cannot be stored, is raised once the other has settled."""
        opening = asyncio.ensure_future(self.provider.open_stream(self.messages))
        session = self.sessions()
        try:
            await session.begin()
            conversation_id = await self._ask(session)
        except BaseException:
            await session.close()
            await _abandon(opening)
            raise
        question = asyncio.ensure_future(_committed(session, conversation_id))
        try:
            stream = await _first_of(request, opening, question)
        except BaseException:
            await self._unanswered(opening, question)
            raise
        if stream is None:
            log.info("chat_client_disconnected")
            await self._unanswered(opening, question)
        return question, stream

    async def _unanswered(
        self,
        opening: asyncio.Task[Chunks],
        question: asyncio.Task[uuid.UUID],
    ) -> None:
        """No answer will come: stop the provider call, and say so once the question is in."""
        await _abandon(opening)
        stored = await _settled(question)
        if stored is not None:
            await self.store_unanswered(stored)


async def _first_of(
    request: Request,
    opening: asyncio.Task[Chunks],
    question: asyncio.Task[uuid.UUID],
) -> Chunks | None:
    """The provider's stream once it opens, or None when the client disconnected first.

    A provider may think for many seconds before it sends a byte; a client that gives up
    meanwhile must not leave that call running (and billing) to the end. The request body has
    been read, so the next message the server can deliver is the disconnect. A question that
    fails to store ends the wait too: there would be nowhere to keep the answer."""

    async def client_left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_left())
    try:
        waiting: set[asyncio.Future[object]] = {opening, watcher, question}  # type: ignore[arg-type]
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if question in done:
                waiting.discard(question)
                if (failure := question.exception()) is not None:
                    log.error("chat_question_not_stored", error=type(failure).__name__)
                    raise QuestionNotStored(QUESTION_LOST) from failure
            if opening in done:
                return opening.result()
            if watcher in done:
                return None
    finally:
        watcher.cancel()


async def _committed(session: AsyncSession, conversation_id: uuid.UUID) -> uuid.UUID:
    try:
        await session.commit()
    finally:
        await session.close()
    return conversation_id


async def _abandon(opening: asyncio.Task[Chunks]) -> None:
    """Stop a provider call being opened, closing its stream if it had opened already."""
    opening.cancel()
    with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
        await (await opening).close()


async def _settled(question: asyncio.Task[uuid.UUID]) -> uuid.UUID | None:
    """The stored question's conversation id once its transaction ends; None if it failed."""
    with anyio.CancelScope(shield=True):
        try:
            return await question
        except Exception:
            return None
    return None  # not reached: a shielded scope swallows no exception
