"""Per-request context: the request ID, the user ID once known, and the client's address.

Both live in structlog's context variables, so every log line written while a request is
handled carries them, and the shared HTTP client reads the request ID from here to send it on
outbound calls. Outside a request (CLI, worker) they are simply absent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from starlette.requests import Request

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def accept_request_id(candidate: str | None) -> str:
    """The client's request ID when it is sane (<= 128 of [A-Za-z0-9._-]), else a fresh one."""
    if candidate is not None and _SANE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def new_request_id() -> str:
    """128 random bits as 32 hex digits, the shape `uuid4().hex` had, without building the
    `uuid.UUID` that was four fifths of the cost (paid by every request without an ID)."""
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def bind_user(user_id: object) -> None:
    """Record the authenticated user for the rest of the request's log lines."""
    structlog.contextvars.bind_contextvars(user_id=str(user_id))


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from, as the audit log and sessions record it."""

    ip: str
    user_agent: str | None


def client_info(request: Request) -> ClientInfo:
    # Imported here: it needs Starlette, which the command line and the worker do without.
    from backline.ratelimit.clientip import client_ip

    agent = request.headers.get("user-agent")
    return ClientInfo(
        ip=client_ip(request.scope, request.app.state.settings.trusted_proxies),
        user_agent=agent[:300] if agent else None,
    )
