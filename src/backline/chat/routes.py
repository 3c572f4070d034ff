"""`POST /api/chat` and the user's conversations under `/api/chat/conversations`.

The route prepares the turn (`turns.prepare`: configuration, message, limits, context), then
either waits for the whole answer (`stream: false`, `turns.answer_whole`) or starts a streamed
one (`opening.open_answer`) and hands it to `EventStream`, lifting the request deadline: the
stream keeps its own limits.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response, status
from fastapi.responses import JSONResponse

from backline import pagination
from backline.accounts.deps import CurrentUserId
from backline.apidoc.declare import raises
from backline.chat import service, turns
from backline.chat.opening import open_answer
from backline.chat.relay import Relay
from backline.chat.schemas import ChatRequest, Rename
from backline.chat.streaming import EventStream
from backline.deps import SessionDep, Sessions, SettingsDep
from backline.middleware.deadline import set_deadline
from backline.routing import router

chat_router = router(prefix="/api/chat", tags=["assistant"])
# One server-sent event of a streamed answer (see `streaming`): its name and one JSON line.
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["delta", "error", "done"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


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
    (503, "chat_unavailable"),
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
    turn = await turns.prepare(
        request,
        settings=settings,
        user_id=user_id,
        message=body.message,
        conversation_id=body.conversation_id,
    )
    if not body.stream:
        return JSONResponse(
            await turns.answer_whole(request, turn, settings=settings, sessions=sessions)
        )
    set_deadline(request, settings.chat_total_timeout + settings.chat_first_byte_timeout)
    question, stream = await open_answer(request, turn, sessions=sessions)
    if stream is None:
        return Response(status_code=499)  # nobody is left to read it; never sent
    set_deadline(request, None)  # the relay enforces the stream's own limits from here
    relay = Relay(
        settings=settings,
        stream=stream,
        sessionmaker=request.app.state.sessionmaker,
        limiter=request.app.state.ratelimiter,
        who=turn.who,
        question=question,
        prompt=turn.prompt,
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
    await service.rename(session, conversation=found, title=body.title)
    return service.conversation_json(found)


@chat_router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
@raises((404, "conversation_not_found"))
async def delete(conversation_id: uuid.UUID, user_id: CurrentUserId, session: SessionDep) -> None:
    found = await service.own(session, conversation_id=conversation_id, user_id=user_id)
    await service.remove(session, conversation=found)
