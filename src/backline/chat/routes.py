"""`POST /api/chat` and the user's conversations under `/api/chat/conversations`.

The route checks the message and the limits, reads the context, stores the user's message in
a short transaction of its own (no connection is held while the provider thinks), then either
waits for the whole answer (`stream: false`, within BACKLINE_CHAT_TIMEOUT) or hands the
provider's stream to `EventStream`, lifting the request deadline: the stream keeps its own
limits. A streamed answer is asked for while the question is being stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import Query, Request, Response, status
from fastapi.responses import JSONResponse
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline import pagination
from backline.accounts.deps import CurrentUserId
from backline.apidoc.declare import raises
from backline.chat import context, limits, service
from backline.chat.provider import Provider, missing_setting, not_configured
from backline.chat.relay import Relay
from backline.chat.schemas import ChatRequest, Rename
from backline.chat.streaming import EventStream
from backline.config import Settings
from backline.deps import SessionDep, Sessions, SettingsDep
from backline.errors import Unprocessable
from backline.logging import get_logger
from backline.middleware.deadline import set_deadline
from backline.routing import router

chat_router = router(prefix="/api/chat", tags=["assistant"])
DEADLINE_MARGIN = 5.0  # past the chat's own limit, so that its 504 is the one the client sees


log = get_logger(__name__)
# One server-sent event of a streamed answer (see `streaming`): its name and one JSON line.
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["delta", "error", "done"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def _provider(request: Request, settings: Settings) -> Provider:
    provider: Provider | None = request.app.state.chat
    variable = missing_setting(settings)
    if provider is None or variable is not None:
        raise not_configured(variable or "BACKLINE_CHAT_BASE_URL")
    return provider


def _checked(message: str, settings: Settings) -> str:
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
    session: AsyncSession, *, user_id: uuid.UUID, body: ChatRequest, text: str, budget: int
) -> list[Any]:
    """What is sent: the system prompt, the turns that fit, the new message (reads only)."""
    past: list[tuple[str, str]] = []
    if body.conversation_id is not None:
        await service.own(session, conversation_id=body.conversation_id, user_id=user_id)
        rows = await context.history(session, conversation_id=body.conversation_id)
        past = [(m.role, m.content) for m in rows]
    system = await context.system_prompt(session, user_id=user_id)
    return context.fit(system, past, text, budget=budget)


async def _store_question(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    text: str,
) -> uuid.UUID:
    """Store the user's message (starting a conversation if none is named); its id."""
    async with sessions() as session, session.begin():
        if conversation_id is None:
            conversation = await service.start(session, user_id=user_id, message=text)
        else:
            conversation = await service.own(
                session, conversation_id=conversation_id, user_id=user_id
            )
        await service.add_message(session, conversation=conversation, role="user", content=text)
        return conversation.id


async def _abandon(opening: asyncio.Task[AsyncStream[ChatCompletionChunk]]) -> None:
    """Stop a provider call being opened, closing its stream if it had opened already."""
    opening.cancel()
    with contextlib.suppress(BaseException):
        await (await opening).close()


async def _opened_unless_client_leaves(
    request: Request, opening: asyncio.Task[AsyncStream[ChatCompletionChunk]]
) -> AsyncStream[ChatCompletionChunk] | None:
    """The provider's stream once it opens, or None when the client disconnected first.

    A provider may think for many seconds before it sends a byte; a client that gives up
    meanwhile must not leave that call running (and billing) to the end. The request body has
    been read, so the next message the server can deliver is the disconnect."""

    async def client_left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_left())
    try:
        await asyncio.wait({opening, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if opening.done():
        return opening.result()
    log.info("chat_client_disconnected")
    await _abandon(opening)
    return None


@chat_router.post(
    "",
    response_model=None,
    responses={
        200: {
            "description": "the answer: whole as JSON, or as server-sent events when `stream`",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        }
    },
)
@raises(
    (503, "chat_not_configured"),
    (422, "message_too_long"),
    (422, "message_empty"),
    (429, "rate_limited"),
    (502, "chat_upstream_error"),
    (504, "chat_upstream_timeout"),
    (404, "conversation_not_found"),
)
async def chat(
    body: ChatRequest,
    request: Request,
    user_id: CurrentUserId,
    settings: SettingsDep,
    sessions: Sessions,
) -> Response | EventStream:
    provider = _provider(request, settings)
    text = _checked(body.message, settings)
    who = await limits.admit(request)
    async with request.app.state.read_sessionmaker() as session:
        messages = await _context(
            session, user_id=user_id, body=body, text=text, budget=settings.chat_context_tokens
        )
    prompt = "".join(str(m.get("content", "")) for m in messages)
    store = partial(
        _store_question, sessions, user_id=user_id, conversation_id=body.conversation_id, text=text
    )
    if not body.stream:
        conversation_id = await store()
        set_deadline(request, settings.chat_timeout + DEADLINE_MARGIN)
        answer = await provider.complete(messages)
        async with sessions() as session, session.begin():
            conversation = await service.own(
                session, conversation_id=conversation_id, user_id=user_id
            )
            stored = await service.add_message(
                session,
                conversation=conversation,
                role="assistant",
                content=answer.text,
                prompt_tokens=answer.usage.prompt_tokens if answer.usage else None,
                completion_tokens=answer.usage.completion_tokens if answer.usage else None,
            )
        usage = answer.usage
        tokens = usage.total if usage else context.estimate_tokens(prompt + answer.text)
        await limits.spend(request.app.state.ratelimiter, who, tokens)
        return JSONResponse(
            {
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
        )
    set_deadline(request, settings.chat_total_timeout + settings.chat_first_byte_timeout)
    # The provider starts thinking while the question is stored: the two overlap.
    opening = asyncio.ensure_future(provider.open_stream(messages))
    try:
        conversation_id = await store()
    except BaseException:
        await _abandon(opening)
        raise
    stream = await _opened_unless_client_leaves(request, opening)
    if stream is None:
        return Response(status_code=499)  # nobody is left to read it; never sent
    set_deadline(request, None)  # the relay enforces the stream's own limits from here
    relay = Relay(
        settings=settings,
        stream=stream,
        sessionmaker=request.app.state.sessionmaker,
        limiter=request.app.state.ratelimiter,
        who=who,
        conversation_id=conversation_id,
        prompt=prompt,
    )
    return EventStream(relay.run, send_timeout=settings.chat_idle_timeout)


@chat_router.get("/conversations")
@raises(pagination.INVALID_CURSOR)
async def conversations(
    user_id: CurrentUserId,
    session: SessionDep,
    cursor: pagination.CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    rows, next_cursor = await service.page(session, user_id=user_id, cursor=cursor, limit=limit)
    return {"items": [service.conversation_json(r) for r in rows], "next_cursor": next_cursor}


@chat_router.get("/conversations/{conversation_id}")
@raises((404, "conversation_not_found"))
async def conversation(
    conversation_id: uuid.UUID, user_id: CurrentUserId, session: SessionDep
) -> dict[str, Any]:
    found = await service.own(session, conversation_id=conversation_id, user_id=user_id)
    rows = await service.messages(session, conversation_id=found.id)
    return {**service.conversation_json(found), "messages": [service.message_json(m) for m in rows]}


@chat_router.patch("/conversations/{conversation_id}")
@raises((404, "conversation_not_found"), (422, "title_empty"))
async def rename(
    conversation_id: uuid.UUID, body: Rename, user_id: CurrentUserId, session: SessionDep
) -> dict[str, Any]:
    found = await service.own(session, conversation_id=conversation_id, user_id=user_id)
    title = " ".join(body.title.split())
    if not title:
        raise Unprocessable("The title is empty.", code="title_empty")
    found.title = title
    await session.flush()
    return service.conversation_json(found)


@chat_router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
@raises((404, "conversation_not_found"))
async def delete(conversation_id: uuid.UUID, user_id: CurrentUserId, session: SessionDep) -> None:
    found = await service.own(session, conversation_id=conversation_id, user_id=user_id)
    await service.remove(session, conversation=found)
