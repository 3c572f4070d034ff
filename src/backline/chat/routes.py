"""`POST /api/chat` and the user's conversations under `/api/chat/conversations`.

The route checks the message and the limits and reads the context; a `turns.Turn` stores the
question in a short transaction of its own (no connection is held while the provider thinks)
and asks the provider. The route then either returns the whole answer (`stream: false`, within
BACKLINE_CHAT_TIMEOUT) or hands the provider's stream to `EventStream`, lifting the request
deadline: the stream keeps its own limits.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.deps import CurrentUserId
from backline.chat import context, limits, service
from backline.chat.provider import Provider, missing_setting, not_configured
from backline.chat.relay import Relay
from backline.chat.schemas import ChatRequest, Rename
from backline.chat.streaming import EventStream
from backline.chat.turns import Turn
from backline.config import Settings
from backline.deps import SessionDep, Sessions, SettingsDep
from backline.errors import Unprocessable
from backline.logging import get_logger
from backline.middleware.deadline import set_deadline
from backline.routing import router

chat_router = router(prefix="/api/chat", tags=["assistant"])
DEADLINE_MARGIN = 5.0  # past the chat's own limit, so that its 504 is the one the client sees


log = get_logger(__name__)


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


@chat_router.post("", response_model=None)
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
    turn = Turn(
        sessions=sessions,
        provider=provider,
        user_id=user_id,
        conversation_id=body.conversation_id,
        text=text,
        messages=messages,
    )
    if not body.stream:
        set_deadline(request, settings.chat_timeout + DEADLINE_MARGIN)
        conversation_id, answer = await turn.complete()
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
    question, stream = await turn.open(request)
    if stream is None:
        return Response(status_code=499)  # nobody is left to read it; never sent
    set_deadline(request, None)  # the relay enforces the stream's own limits from here
    relay = Relay(
        settings=settings,
        stream=stream,
        sessionmaker=request.app.state.sessionmaker,
        limiter=request.app.state.ratelimiter,
        who=who,
        question=question,
        prompt=prompt,
    )
    return EventStream(relay.run, send_timeout=settings.chat_idle_timeout)


@chat_router.get("/conversations")
async def conversations(
    user_id: CurrentUserId,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    rows, next_cursor = await service.page(session, user_id=user_id, cursor=cursor, limit=limit)
    return {"items": [service.conversation_json(r) for r in rows], "next_cursor": next_cursor}


@chat_router.get("/conversations/{conversation_id}")
async def conversation(
    conversation_id: uuid.UUID, user_id: CurrentUserId, session: SessionDep
) -> dict[str, Any]:
    found = await service.own(session, conversation_id=conversation_id, user_id=user_id)
    rows = await service.messages(session, conversation_id=found.id)
    return {**service.conversation_json(found), "messages": [service.message_json(m) for m in rows]}


@chat_router.patch("/conversations/{conversation_id}")
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
async def delete(conversation_id: uuid.UUID, user_id: CurrentUserId, session: SessionDep) -> None:
    found = await service.own(session, conversation_id=conversation_id, user_id=user_id)
    await service.remove(session, conversation=found)
