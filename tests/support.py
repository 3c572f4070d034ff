"""Helpers for the tests: a router of probe endpoints and a recording HTTP server.

The probe router is mounted on the app under test (never in production) to exercise the
middleware from inside a real request: a JSON endpoint that writes a user, a slow endpoint
that records whether it was cancelled, one that raises, one that calls out over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import service as accounts
from backline.config import Settings
from backline.context import bind_user
from backline.deps import HttpClientDep, SessionDep, SettingsDep
from backline.email import service as outbox
from backline.errors import TooManyRequests
from backline.logging import get_logger
from backline.middleware.deadline import set_deadline
from backline.ratelimit.deps import RateLimit
from backline.routing import router as make_router

router = make_router(public=True, prefix="/test")
log = get_logger("tests.support")


@dataclass
class SlowProbe:
    started: int = 0
    finished: int = 0
    cancelled: int = 0
    events: list[str] = field(default_factory=list)


slow_probe = SlowProbe()


class SignupProbe(BaseModel):
    email: str
    display_name: str = Field(min_length=1, max_length=100)
    age: int


async def _signup(body: SignupProbe, session: AsyncSession, settings: Settings) -> str:
    user = await accounts.create(
        session, email=body.email, password="correct horse battery", display_name=body.display_name
    )
    await outbox.enqueue(
        session,
        settings=settings,
        template="verify_email",
        to_address=user.email,
        to_name=user.display_name,
        context={"token": "probe-token", "expires_hours": 24},
    )
    return str(user.id)


@router.post("/signup", status_code=201)
async def signup(body: SignupProbe, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    return {"id": await _signup(body, session, settings)}


@router.post("/signup-then-fail")
async def signup_then_fail(
    body: SignupProbe, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    await _signup(body, session, settings)
    raise RuntimeError("failed after writing")


@router.get("/slow")
async def slow(seconds: float) -> dict[str, str]:
    slow_probe.started += 1
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        slow_probe.cancelled += 1
        raise
    slow_probe.finished += 1
    return {"status": "done"}


@router.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("kaboom with password=hunter2hunter2")


@router.post("/explode")
async def explode(fields: dict[str, Any]) -> dict[str, str]:
    log.info("probe_event", **fields)
    raise RuntimeError(f"failed with password={fields.get('password')} and {fields.get('note')}")


@router.get("/outbound")
async def outbound(url: str, http: HttpClientDep) -> dict[str, Any]:
    response = await http.get(url)
    return {"status": response.status_code}


@router.post("/log")
async def log_event(fields: dict[str, Any]) -> dict[str, str]:
    log.info("probe_event", **fields)
    return {"status": "logged"}


# ----------------------------------------------------------------------------- recording server


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


class RecordingServer:
    """A loopback HTTP server that records every request it receives and answers 200."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorded.append(Recorded("GET", self.path, dict(self.headers.items())))
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[RecordingServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


@router.get("/whoami")
async def whoami() -> dict[str, str]:
    bind_user("0b4f5c1e-5a5e-4d0e-9d43-6f7c1f3f0a11")
    return {"status": "ok"}


@router.get("/patient")
async def patient(request: Request, seconds: float) -> dict[str, str]:
    set_deadline(request, seconds + 5)
    await asyncio.sleep(seconds)
    return {"status": "done"}


class EmailProbe(BaseModel):
    email: str


@router.post("/credential", dependencies=[RateLimit("login")])
async def credential(body: EmailProbe) -> dict[str, str]:
    return {"status": "checked"}


@router.get("/reading", dependencies=[RateLimit("upload")])
async def reading() -> dict[str, str]:
    return {"status": "read"}


@router.get("/limited")
async def limited() -> dict[str, str]:
    raise TooManyRequests("Slow down.", headers={"Retry-After": "7"})
