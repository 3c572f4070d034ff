"""The sign-in's floor on this machine: its work with FastAPI and SQLAlchemy's execution taken out.

`create_app` serves `POST /api/auth/login` as a bare ASGI callable doing what a right password
costs in Backline, no more: the global limit and the login route's two policies (Backline's
`RateLimiter`, on Redis), the sign-in's two statements and the session cap's one (Backline's,
compiled once by SQLAlchemy and sent by asyncpg itself), the Argon2id check (Backline's hashing
threads), the session's refresh token and audit event, and a signed access token. Left out is
all a product needs around that: middleware (request IDs, access log, security headers, CORS,
deadlines, body limits, problem+json errors), validation, SQLAlchemy's type handling, the
throttle's rules on a refused or paused sign-in, cookies, and what the cap does on the rare
sign-in that ends sessions (their audit event and revocation markers).

It is never served by Backline and exists for one comparison in `bench.auth`: how close to the
raw Argon2id rate a sign-in gets on this machine when nothing but its own round trips and
hashing cost, with PostgreSQL, Redis and the load generator sharing the cores. PostgreSQL only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql import ClauseElement
from starlette.types import Receive, Scope, Send

from backline.accounts import sessions, signin, throttle
from backline.accounts.emails import normalize_email
from backline.accounts.passwords import verify_password
from backline.accounts.tokens import digest, issue_access, new_opaque, now
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import JSON_CODEC
from backline.ratelimit.limiter import RateLimiter


class _Statement:
    """A Core statement compiled once for asyncpg: its SQL and its parameters in order."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=asyncpg_dialect())
        self.sql = compiled.string
        self.order = list(compiled.positiontup or ())
        self.fixed = {n: b.value for b, n in compiled.bind_names.items() if not b.required}

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.fixed, **params}
        return [values[name] for name in self.order]


_START = _Statement(signin._START)
_OPEN = _Statement(signin._BY_PASSWORD.in_one)
_CAP = _Statement(sessions._CAP)


async def _body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Floor:
    def __init__(self) -> None:
        self.settings = Settings()
        self.ready: tuple[asyncpg.Pool, RateLimiter] | None = None  # set at start-up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] == "/healthz":  # ready only once started: the bench waits for it
            await _answer(send, 503 if self.ready is None else 200, b"{}")
        else:
            await _answer(send, *await self._sign_in(scope, await _body(receive)))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while (await receive())["type"] == "lifespan.startup":
            dsn = self.settings.db_url.replace("postgresql+asyncpg://", "postgresql://")
            try:
                pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
            except (OSError, asyncpg.PostgresError) as exc:
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            self.ready = (pool, RateLimiter.from_settings(self.settings))
            await send({"type": "lifespan.startup.complete"})
        if self.ready is not None:
            pool, limiter = self.ready
            await limiter.aclose()
            await pool.close()
        await send({"type": "lifespan.shutdown.complete"})

    async def _sign_in(self, scope: Scope, body: bytes) -> tuple[int, bytes]:
        if self.ready is None:
            raise RuntimeError("served before its start-up")
        pool, limiter = self.ready
        sent = json.loads(body)
        email, ip = sent["email"], scope["client"][0]
        normalized = normalize_email(email)
        checks = (  # as Backline asks them: the global limit without its window's stats
            ("global", "ip", ip, False),
            ("login", "ip", ip, True),
            ("login_account", "email", normalized, True),
        )
        for policy, key, identity, stats in checks:
            if not (await limiter.check(policy, {key: identity}, stats=stats)).allowed:
                return 429, b"{}"
        key = throttle.key_for(email)
        async with pool.acquire() as connection:
            row = await connection.fetchrow(
                _START.sql, *_START.arguments({"key": key, "email": normalized})
            )
        if row is None or row["id"] is None:
            return 401, b"{}"
        if not await verify_password(row["password_hash"], sent["password"]):
            return 401, b"{}"
        client = ClientInfo(ip=ip, user_agent=None)
        moment, session_id, refresh = now(), uuid.uuid4(), new_opaque()
        event = audit.values(
            event="login_ok",
            user_id=row["id"],
            client=client,
            session_id=str(session_id),
            method="password",
        )
        event["details"] = JSON_CODEC["json_serializer"](event["details"])
        params = {
            "user_id": row["id"],
            "checked_hash": row["password_hash"],
            "key": key,
            "session_id": session_id,
            "user_agent": client.user_agent,
            "ip": ip,
            "moment": moment,
            "expires_at": moment + timedelta(days=self.settings.refresh_token_days),
            "token_id": uuid.uuid4(),
            "token_hash": digest(refresh),
            **{f"event_{name}": value for name, value in event.items()},
        }
        async with pool.acquire() as connection:
            if await connection.fetchrow(_OPEN.sql, *_OPEN.arguments(params)) is None:
                return 401, b"{}"
            keep = self.settings.max_sessions - 1
            cap = {"owner": row["id"], "kept": session_id, "now": moment, "keep": keep}
            await connection.fetch(_CAP.sql, *_CAP.arguments(cap))
        minutes = self.settings.access_token_minutes
        access = issue_access(
            self.settings.signing_key, user_id=row["id"], session_id=session_id, minutes=minutes
        )
        tokens = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": minutes * 60,
            "refresh_token": refresh,
        }
        return 200, json.dumps(tokens).encode()


def create_app() -> _Floor:
    return _Floor()
