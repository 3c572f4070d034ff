"""A deadline for the whole request: past it the work is cancelled and the client gets 504.

The request runs inside `asyncio.timeout`; when the deadline passes, the handler's task is
cancelled at its next await (database query, outbound call, sleep), so the work stops rather
than running on unseen. If no response has started, the client gets 504 `deadline_exceeded`;
if a streamed response had started, the stream is cut.

Routes that legitimately run longer (uploads, chat streams) change their own deadline with
`set_deadline(request, seconds)` (or `None` for none), before they start the long part.

The deadlines are kept by one sweep per event loop rather than a timer each, and `Expiry` is
written here in place of `asyncio.timeout`: that arms and disarms a timer in the loop's heap for
every request (15-20 microseconds, most of what this middleware cost), though nearly every
request ends long before its deadline. Each request registers its deadline; while any request
is in flight a sweep runs every `TICK` seconds and cancels the tasks past theirs, which then
end as under `asyncio.timeout` (the cancellation becomes `TimeoutError` at the `async with`,
and a cancellation from elsewhere stays one). A deadline fires at most `TICK` late.
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
TICK = 0.1  # seconds between sweeps while a request is in flight


class _Sweep:
    """The open deadlines of one event loop, and the timer that checks them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open: set[Expiry] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, expiry: Expiry) -> None:
        self.open.add(expiry)
        if self.timer is None:
            self.timer = self.loop.call_later(TICK, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for expiry in [e for e in self.open if e.when is not None and e.when <= now]:
            expiry.expire()
        self.timer = self.loop.call_later(TICK, self.sweep) if self.open else None


class Expiry:
    """One request's deadline, as `asyncio.timeout(seconds)` would keep it (see above)."""

    __slots__ = ("_cancelling", "_expired", "_sweep", "_task", "when")

    def __init__(self, sweep: _Sweep, seconds: float) -> None:
        self._sweep = sweep
        self.when: float | None = sweep.loop.time() + seconds
        self._expired = False

    async def __aenter__(self) -> Expiry:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._sweep.add(self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        self._sweep.open.discard(self)
        # As `asyncio.Timeout`: the cancellation is ours to turn into TimeoutError only when
        # no other cancellation of the task is pending.
        expired = self._expired and self._task.uncancel() <= self._cancelling
        if expired and kind is asyncio.CancelledError:
            raise TimeoutError from exc

    def reschedule(self, when: float | None) -> None:
        """Move the deadline to the loop time `when` (`None`: no deadline)."""
        self.when = when

    def expire(self) -> None:
        self._expired = True
        self._sweep.open.discard(self)
        self._task.cancel()

    def expired(self) -> bool:
        return self._expired


def set_deadline(request: Request, seconds: float | None) -> None:
    """Move this request's deadline to `seconds` from now (`None`: no deadline)."""
    expiry = request.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(expiry, Expiry):
        when = None if seconds is None else asyncio.get_running_loop().time() + seconds
        expiry.reschedule(when)


class Deadline:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self._sweep: _Sweep | None = None

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

        sweep = self._sweep
        if sweep is None or sweep.loop is not asyncio.get_running_loop():
            sweep = self._sweep = _Sweep(asyncio.get_running_loop())
        timeout = Expiry(sweep, self.seconds)
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
