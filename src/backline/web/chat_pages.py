"""Portal pages for the assistant: `/chat` (the conversations and a new one) and `/chat/{id}`.

With JavaScript off the message form posts here and the answer is awaited whole, as
`POST /api/chat` with `stream: false` does (`chat.turns`); the page then shows the conversation.
With JavaScript on, `static/chat.js` posts the same form to `/api/chat` with the CSRF header
and shows the streamed answer as it arrives. Conversations are renamed and deleted through
`chat.service`, the same as the API. When the assistant is not configured the page says so
calmly and offers no form.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.chat import service, turns
from backline.chat.provider import ChatNotConfigured
from backline.chat.schemas import Rename
from backline.config import Settings
from backline.deps import SessionDep, Sessions, SettingsDep
from backline.errors import ProblemError
from backline.routing import router
from backline.web.render import field_errors, page
from backline.web.viewer import Viewer, checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)
# Which field a refusal from the assistant is about.
FIELD_OF = {"message_empty": "message", "message_too_long": "message", "title_empty": "title"}


def _configured(request: Request, settings: Settings) -> bool:
    try:
        turns.provider_of(request, settings)
    except ChatNotConfigured:
        return False
    return True


async def _chat_page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    viewer: Viewer,
    conversation_id: uuid.UUID | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The conversations, and the one open (404 for one that is not the viewer's)."""
    listed, _ = await service.page(session, user_id=viewer.user.id, cursor=None, limit=50)
    current, messages = None, []
    if conversation_id is not None:
        current = await service.own(
            session, conversation_id=conversation_id, user_id=viewer.user.id
        )
        messages = list(await service.messages(session, conversation_id=current.id))
    title = current.title if current is not None else "Assistant"
    return page(
        "chat.html", status, title=title, viewer=viewer, conversations=listed, current=current,
        messages=messages, configured=_configured(request, settings),
        max_chars=settings.chat_max_message_chars, **context,
    )  # fmt: skip


@pages.get("/chat", response_class=HTMLResponse)
async def chat_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    return await _chat_page(request, session, settings, viewer)


@pages.get("/chat/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(
    conversation_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    return await _chat_page(request, session, settings, viewer, conversation_id)


@pages.post("/chat", response_class=HTMLResponse)
async def ask(
    request: Request, session: SessionDep, settings: SettingsDep, sessions: Sessions
) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    form = await checked_form(request, viewer)
    message = form.get("message", "")[: settings.chat_max_message_chars + 1]
    try:
        conversation_id = (
            uuid.UUID(form["conversation_id"]) if form.get("conversation_id") else None
        )
    except ValueError:
        conversation_id = None
    try:
        turn = await turns.prepare(
            request, settings=settings, user_id=viewer.user.id, message=message,
            conversation_id=conversation_id,
        )  # fmt: skip
        answered = await turns.answer_whole(request, turn, settings=settings, sessions=sessions)
    except ProblemError as exc:
        if exc.code == "conversation_not_found":
            raise
        field = FIELD_OF.get(exc.code)
        quiet = field or exc.code == "chat_not_configured"  # the page says so calmly itself
        return await _chat_page(
            request, session, settings, viewer, conversation_id, exc.status,
            values={"message": message}, errors={field: exc.detail} if field else {},
            error=None if quiet else exc.detail,
        )  # fmt: skip
    return RedirectResponse(f"/chat/{answered['conversation_id']}#latest", status_code=303)


@pages.post("/chat/{conversation_id}/rename", response_class=HTMLResponse)
async def rename(
    conversation_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    form = await checked_form(request, viewer)
    values = {"title": form.get("title", "")[:400]}
    found = await service.own(session, conversation_id=conversation_id, user_id=viewer.user.id)
    try:
        body = Rename.model_validate(values)
        await service.rename(session, conversation=found, title=body.title)
    except (ValidationError, ProblemError) as exc:  # refused before anything changed
        errors = field_errors(exc) if isinstance(exc, ValidationError) else {"title": exc.detail}
        return await _chat_page(
            request, session, settings, viewer, conversation_id, 422, values=values, errors=errors
        )
    return RedirectResponse(f"/chat/{conversation_id}", status_code=303)


@pages.post("/chat/{conversation_id}/delete")
async def delete(conversation_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    await checked_form(request, viewer)
    found = await service.own(session, conversation_id=conversation_id, user_id=viewer.user.id)
    await service.remove(session, conversation=found)
    return RedirectResponse("/chat", status_code=303)
