"""What the domains call to record an event in the metrics, where one call is more than `inc()`:
an upload's outcome, a chat answer's token usage, a database pool's connections in use."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from backline.errors import ProblemError
from backline.metrics import CHAT_TOKENS, DB_POOL_IN_USE, UPLOAD_BYTES, UPLOADS


def upload_outcome(error: BaseException | None) -> str:
    """`stored`; `rejected` (the client's upload was refused: too large, not audio, a digest
    that does not match...); `aborted` (the client went away, or the server is stopping);
    `failed` (the server's side: storage down, an unexpected error)."""
    if error is None:
        return "stored"
    if isinstance(error, ProblemError):
        return "rejected" if error.status < 500 else "failed"
    if isinstance(error, HTTPException):
        return "rejected" if error.status_code < 500 else "failed"
    if isinstance(error, ClientDisconnect | asyncio.CancelledError):
        return "aborted"
    return "failed"


def count_upload(*, kind: str, via: str, outcome: str, size: int = 0) -> None:
    """One upload of `kind` (audio, artwork) that came `via` stream, form or direct, with its
    `outcome` (see `upload_outcome`); the bytes of one `stored` are counted too."""
    UPLOADS.labels(kind, via, outcome).inc()
    if outcome == "stored":
        UPLOAD_BYTES.labels(kind, via).inc(size)


def count_chat_tokens(*, prompt: int, completion: int) -> None:
    """An answer's usage as the provider reported it."""
    CHAT_TOKENS.labels("prompt").inc(max(0, prompt))
    CHAT_TOKENS.labels("completion").inc(max(0, completion))


def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    DB_POOL_IN_USE.inc()


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    DB_POOL_IN_USE.dec()


def count_pool_use(engine: AsyncEngine) -> None:
    """Keep `backline_db_pool_connections_in_use` as the engine's pool lends and takes back.

    Registered after the engine's own checkout listener (`db._ping_if_idle`): when that one
    finds a connection dropped and has the pool take another, the listeners after it do not
    run for the dropped one, so each connection lent is counted once. A connection invalidated
    while lent is still checked in (as None), so the count comes down again."""
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", _checked_out)
    event.listen(pool, "checkin", _checked_in)
