"""Resend delivery against a local stand-in: success, rate limits, errors, hangs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.config import Settings
from backline.db import create_sessionmaker, utcnow
from backline.email import service as outbox
from backline.email.models import OutboxEmail
from tests.conftest import LogCapture
from tests.email.conftest import ResendStub

API_KEY = "re_test_key_never_logged"


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database_url: str, resend_stub: ResendStub
) -> Settings:
    return make_settings(
        database_url=database_url,
        email_backend="resend",
        resend_api_key=API_KEY,
        resend_base_url=resend_stub.url,
        email_timeout=0.5,
        email_from="Backline <hello@backline.example>",
    )


async def queue_one(engine: AsyncEngine, settings: Settings, **kw: Any) -> OutboxEmail:
    async with create_sessionmaker(engine)() as session, session.begin():
        return await outbox.enqueue(
            session,
            settings=settings,
            template="verify_email",
            to_address="ann@example.com",
            to_name="Ann",
            context={"token": "tok", "expires_hours": 24},
            **kw,
        )


async def stored(engine: AsyncEngine) -> OutboxEmail:
    async with create_sessionmaker(engine)() as session:
        return (await session.scalars(select(OutboxEmail))).one()


async def test_delivery_sends_the_idempotency_key_and_credentials(
    engine: AsyncEngine,
    settings: Settings,
    resend_stub: ResendStub,
    make_worker: Any,
    logs: LogCapture,
) -> None:
    from backline.logging import configure_logging

    configure_logging(settings, stream=logs.stream)
    row = await queue_one(engine, settings, idempotency_key="verify:ann:1")
    await make_worker(settings).drain()
    [call] = resend_stub.calls
    assert call.path == "/emails"
    assert call.headers["Idempotency-Key"] == "verify:ann:1"
    assert call.headers["Authorization"] == f"Bearer {API_KEY}"
    assert call.body["to"] == ["Ann <ann@example.com>"]
    assert call.body["from"] == "Backline <hello@backline.example>"
    assert call.body["subject"] == "Confirm your email address"
    assert "verify-email?token=tok" in call.body["text"]
    assert "verify-email?token=tok" in call.body["html"]
    assert call.body["headers"]["Message-ID"].endswith("@backline.example>")
    assert (await stored(engine)).status == "sent"
    assert row.id == (await stored(engine)).id
    assert API_KEY not in logs.text


async def test_the_request_that_queued_the_email_is_traced_to_the_provider(
    client: httpx.AsyncClient, app: Any, resend_stub: ResendStub, make_worker: Any
) -> None:
    response = await client.post(
        "/test/signup",
        json={"email": "traced@example.com", "display_name": "T", "age": 3},
        headers={"X-Request-ID": "trace-email-1"},
    )
    assert response.status_code == 201
    await make_worker(app.state.settings).drain()
    [call] = resend_stub.calls
    assert call.headers["X-Request-ID"] == "trace-email-1"


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (429, "pending", "Resend 429"),
        (500, "pending", "Resend 500"),
        (503, "pending", "Resend 503"),
        (422, "dead", "Resend 422: validation_error"),
        (401, "dead", "Resend 401"),
    ],
)
async def test_failures_are_retried_or_dead_by_kind(
    engine: AsyncEngine,
    settings: Settings,
    resend_stub: ResendStub,
    make_worker: Any,
    answer: int,
    status: str,
    reason: str,
) -> None:
    resend_stub.answers = [answer]
    await queue_one(engine, settings)
    await make_worker(settings).drain()
    row = await stored(engine)
    assert row.status == status
    assert row.last_error is not None
    assert row.last_error.startswith(reason)
    assert row.attempts == 1
    if answer == 429:  # the provider's Retry-After (120 s) is honoured
        assert (row.next_attempt_at - utcnow()).total_seconds() > 110


async def test_a_hanging_provider_times_out_and_is_retried(
    engine: AsyncEngine, settings: Settings, resend_stub: ResendStub, make_worker: Any
) -> None:
    resend_stub.answers = ["hang"]
    await queue_one(engine, settings)
    began = time.monotonic()
    await make_worker(settings).drain()
    assert time.monotonic() - began < 3
    row = await stored(engine)
    assert row.status == "pending"
    assert row.last_error == "Resend unreachable: ReadTimeout"


async def test_recovered_provider_gets_the_message_with_the_same_key(
    engine: AsyncEngine, settings: Settings, resend_stub: ResendStub, make_worker: Any
) -> None:
    from datetime import timedelta

    import time_machine

    resend_stub.answers = [500, 200]
    await queue_one(engine, settings)
    worker = make_worker(settings)
    await worker.drain()
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        await worker.drain()
    first, second = resend_stub.calls
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert (await stored(engine)).status == "sent"
