"""The development mailbox: `/dev/mailbox` lists recent outbox messages with clickable links.

A newcomer verifies an account or resets a password without any mail server. The pages show
every account's links to anyone who can reach them, so the router is mounted only when
`BACKLINE_DEV_MAILBOX` says so, never in production; `backline serve` sets it, unless it is set
already, to on in development when listening on loopback only (see `Settings.dev_mailbox_on`).
"""

from __future__ import annotations

import re
import uuid
from functools import cache
from typing import TYPE_CHECKING

from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from backline.deps import SessionDep
from backline.email import service
from backline.email.models import OutboxEmail
from backline.errors import NotFound
from backline.routing import router

if TYPE_CHECKING:
    from jinja2 import Environment

dev_router = router(public=True, prefix="/dev", include_in_schema=False)
_URL = re.compile(r"https?://[^\s<>\"']+")
# The stored HTML part is shown as sent, but sandboxed: no scripts, no forms, no navigation.
_MESSAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@cache
def _pages() -> Environment:
    from jinja2 import Environment, PackageLoader  # at the first page shown, as `web.render`

    return Environment(loader=PackageLoader("backline.email", "pages"), autoescape=True)


def _links(message: OutboxEmail) -> list[str]:
    return list(dict.fromkeys(_URL.findall(message.text_body or "")))


def _linkified(text: str) -> Markup:
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))  # noqa: S704 - input escaped above


@dev_router.get("/mailbox", response_class=HTMLResponse)
async def mailbox(session: SessionDep) -> HTMLResponse:
    messages = await service.list_recent(session, limit=50)
    page = _pages().get_template("mailbox.html").render(messages=messages, links=_links)
    return HTMLResponse(page)


async def _message(session: SessionDep, email_id: uuid.UUID) -> OutboxEmail:
    message = await service.get(session, email_id=email_id)
    if message is None:
        raise NotFound("No such message.")
    return message


@dev_router.get("/mailbox/{email_id}", response_class=HTMLResponse)
async def mailbox_message(email_id: uuid.UUID, session: SessionDep) -> HTMLResponse:
    message = await _message(session, email_id)
    text = _linkified(message.text_body or "(body not kept after delivery)")
    page = _pages().get_template("message.html").render(message=message, text=text)
    return HTMLResponse(page, headers={"Referrer-Policy": "no-referrer"})


@dev_router.get("/mailbox/{email_id}/html", response_class=HTMLResponse)
async def mailbox_message_html(email_id: uuid.UUID, session: SessionDep) -> HTMLResponse:
    message = await _message(session, email_id)
    return HTMLResponse(
        message.html_body or "",
        headers={"Content-Security-Policy": _MESSAGE_CSP, "Referrer-Policy": "no-referrer"},
    )
