"""Shared by the second-factor tests: both databases, a frozen clock, codes from a secret, and
what a refusal left behind (audit events, the lockout's count, a rate limit's budget)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import throttle
from backline.accounts.tokens import now
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.crypto import generate_entry
from backline.db import create_sessionmaker
from backline.factors import totp
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD, bearer

LIMITS = {**GENEROUS_LIMITS, "mfa_verify": "100000/minute", "mfa_manage": "100000/minute"}


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url,
        rate_limits=LIMITS,
        lockout_threshold=20,
        encryption_keys=generate_entry(),
    )


@contextmanager
def stopped_clock() -> Iterator[time_machine.Coordinates]:
    """Time stands still at the start of a 30-second step until a test moves it."""
    start = now()
    start -= timedelta(seconds=start.timestamp() % totp.STEP_SECONDS)
    with time_machine.travel(start + timedelta(seconds=1), tick=False) as stopped:
        yield stopped


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with stopped_clock() as stopped:
        yield stopped


def code_now(secret: str, *, steps: int = 0) -> str:
    """The code the authenticator app shows now (or `steps` steps from now)."""
    return totp.code_at(secret, totp.step_at(now()) + steps)


def next_step(clock: time_machine.Coordinates) -> None:
    clock.shift(timedelta(seconds=totp.STEP_SECONDS))


async def enrol(client: httpx.AsyncClient, tokens: dict[str, Any]) -> tuple[str, list[str]]:
    """Set up TOTP for the signed-in account: its secret and recovery codes."""
    started = await client.post(
        "/api/me/factors/totp", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    # The code of the step before (within the drift allowed): the current step's code is
    # then still unused, as if a little time had passed since enrolment.
    confirmed = await client.post(
        "/api/me/factors/totp/confirm",
        json={"code": code_now(secret, steps=-1)},
        headers=bearer(tokens),
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def password_step(
    client: httpx.AsyncClient, email: str = "ann@example.com", **extra: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD, **extra}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["mfa_required"] is True, body
    return body


async def second_step(client: httpx.AsyncClient, challenge: str, **code: str) -> httpx.Response:
    return await client.post("/api/auth/mfa/verify", json={"challenge_token": challenge, **code})


async def events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.event == name))
        return list(rows.all())


async def failures(engine: AsyncEngine, email: str = "ann@example.com") -> int:
    """The failures counted toward the address's lockout (a completed sign-in clears them)."""
    async with create_sessionmaker(engine)() as session:
        row = await session.get(throttle.LoginThrottle, throttle.key_for(email))
        return row.failed_logins if row is not None else 0


def budget(response: httpx.Response, policy: str = "mfa_verify") -> int:
    """What the answer's `RateLimit` header says is left of `policy`'s limit."""
    for member in response.headers.get("RateLimit", "").split(","):
        name, *params = member.strip().split(";")
        if name == f'"{policy}"':
            return int(dict(param.split("=") for param in params)["r"])
    raise AssertionError(f"no {policy} in {response.headers.get('RateLimit')!r}")
