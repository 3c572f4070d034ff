"""A deadline for the whole request: past it the work is cancelled and the client gets 504.

The request runs inside `asyncio.timeout`; when the deadline passes, the handler's task is
cancelled at its next await (database query, outbound call, sleep), so the work stops rather
than running on unseen. If no response has started, the client gets 504 `deadline_exceeded`;
if a streamed response had started, the stream is cut.

Routes that legitimately run longer (uploads, chat streams) change their own deadline with
`set_deadline(request, seconds)` (or `None` for none), before they start the long part.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline.errors import problem_response
from backline.logging import get_logger
from backline.metrics import DEADLINES_EXCEEDED
from backline.middleware.access import route_template

log = get_logger(__name__)
_STATE_KEY = "deadline"


def set_deadline(request: Request, seconds: float | None) -> None:
    """Move this request's deadline to `seconds` from now (`None`: no deadline)."""
    timeout = request.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(timeout, asyncio.Timeout):
        when = None if seconds is None else asyncio.get_running_loop().time() + seconds
        timeout.reschedule(when)


class Deadline:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        timeout = asyncio.timeout(self.seconds)
        scope.setdefault("state", {})[_STATE_KEY] = timeout
        try:
            async with timeout:
                await self.app(scope, receive, send_tracking)
        except TimeoutError:
            if not timeout.expired():
                raise
            route = route_template(scope)
            DEADLINES_EXCEEDED.labels(route).inc()
            log.warning("deadline_exceeded", route=route, response_started=started)
            if started:
                return
            response = problem_response(
                504,
                "deadline_exceeded",
                "The request took longer than the server allows and was cancelled.",
            )
            await response(scope, receive, send)
