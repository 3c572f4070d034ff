"""Starting a streamed answer: the provider asked while the question is written and committed.

The provider is asked first; the question is written meanwhile, and committed while the answer
starts: what a commit costs (a disk flush on PostgreSQL) is not added to the time to the first
word. On PostgreSQL the question is one statement, run as its own transaction (no BEGIN or
COMMIT round trip); elsewhere it is written in a transaction the route waits for, then
committed. Either way the route takes the question's connection before it relays anything, so
that under load new answers queue for the database rather than the database for a busy event
loop. The relay (`relay`) waits for the question only when it stores the answer, and stops
early, with an error event, if the question could not be stored.

A client that leaves while the provider thinks, a provider that fails before its first byte,
or a question that cannot be saved each end the turn here: the provider call is given up at
once, and the conversation records that no answer came (`turns.store_unanswered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING

import anyio
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from backline.chat.service import ONE_STATEMENT_DIALECTS
from backline.chat.turns import Turn, store_unanswered, write_question
from backline.db import Engines
from backline.errors import ProblemError, ServiceUnavailable
from backline.logging import get_logger

if TYPE_CHECKING:
    from backline.chat.provider import Chunks

log = get_logger(__name__)
QUESTION_LOST = "The conversation could not be saved; please ask again."


class QuestionNotStored(ServiceUnavailable):
    code = "chat_unavailable"


async def open_answer(
    request: Request, turn: Turn, *, sessions: async_sessionmaker[AsyncSession]
) -> tuple[asyncio.Task[uuid.UUID], Chunks | None]:
    """Ask the provider and write the question side by side; then wait for the provider
    while the question commits.

    Returns the committing task (it gives the conversation's id) and the opened stream, or
    None for the stream when the client left before the provider answered. A provider
    failure is raised as its problem; a question that cannot be saved as 503
    `chat_unavailable`."""
    opening = asyncio.ensure_future(turn.provider.open_stream(turn.messages))
    engines: Engines = request.app.state.engines
    # Core, not the ORM's session: it costs more than the write. Where the question is one
    # statement (`service.ask`), it is its own transaction: no BEGIN and COMMIT to wait for.
    one_statement = engines.default.dialect.name in ONE_STATEMENT_DIALECTS
    connection = (engines.autocommit if one_statement else engines.default).connect()
    try:
        await connection.start()  # a pool that stays exhausted raises here: nothing to close
    except BaseException:
        await _abandon(opening)
        raise
    if one_statement:
        question = asyncio.ensure_future(_written(connection, turn))
    else:
        try:
            await connection.begin()
            conversation_id = await write_question(connection, turn)
        except BaseException:
            await connection.close()
            await _abandon(opening)
            raise
        question = asyncio.ensure_future(_committed(connection, conversation_id))
    try:
        stream = await _first_of(request, opening, question)
    except BaseException:
        await _unanswered(sessions, turn, opening, question)
        raise
    if stream is None:
        log.info("chat_client_disconnected")
        await _unanswered(sessions, turn, opening, question)
    return question, stream


async def _unanswered(
    sessions: async_sessionmaker[AsyncSession],
    turn: Turn,
    opening: asyncio.Task[Chunks],
    question: asyncio.Task[uuid.UUID],
) -> None:
    """No answer will come: stop the provider call, and say so once the question is in."""
    await _abandon(opening)
    stored = await _settled(question)
    if stored is not None:
        await store_unanswered(sessions, turn, stored)


async def _first_of(
    request: Request, opening: asyncio.Task[Chunks], question: asyncio.Task[uuid.UUID]
) -> Chunks | None:
    """The provider's stream once it opens, or None when the client disconnected first.

    A provider may think for many seconds before it sends a byte; a client that gives up
    meanwhile must not leave that call running (and billing) to the end. The request body has
    been read, so the next message the server can deliver is the disconnect. A question that
    fails to commit ends the wait too: there would be nowhere to keep the answer."""

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
                if isinstance(failure := question.exception(), ProblemError):
                    raise failure  # the conversation went meanwhile: 404, as `prepare` says
                if failure is not None:
                    log.error("chat_question_not_stored", error=type(failure).__name__)
                    raise QuestionNotStored(QUESTION_LOST) from failure
            if opening in done:
                return opening.result()
            if watcher in done:
                return None
    finally:
        watcher.cancel()


async def _written(connection: AsyncConnection, turn: Turn) -> uuid.UUID:
    try:
        return await write_question(connection, turn)
    finally:
        await connection.close()


async def _committed(connection: AsyncConnection, conversation_id: uuid.UUID) -> uuid.UUID:
    try:
        await connection.commit()
    finally:
        await connection.close()
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
