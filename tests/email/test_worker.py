"""The worker's handling of delivered messages: bodies kept for the dev mailbox, cleared in
production (they hold one-time links)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.config import Settings
from backline.db import create_sessionmaker
from backline.email import service as outbox
from backline.email.models import OutboxEmail
from tests.email.conftest import SMTPSink


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.mark.parametrize("env", ["production", "development", "test"])
async def test_delivered_bodies_are_cleared_in_production_only(
    engine: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    smtp_sink: SMTPSink,
    make_worker: Any,
    env: str,
) -> None:
    settings = make_settings(
        env=env,
        database_url=database_url,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_starttls=False,
        email_timeout=2,
        public_url="https://backline.example",
    )
    async with create_sessionmaker(engine)() as session, session.begin():
        row = await outbox.enqueue(
            session,
            settings=settings,
            template="password_reset",
            to_address="ann@example.com",
            to_name="Ann",
            context={"token": "one-time-secret", "expires_minutes": 60},
        )
    assert await make_worker(settings).drain() == 1

    [received] = smtp_sink.received  # what was delivered held the link
    text = received.message.get_body(("plain",))
    assert text is not None
    assert "token=one-time-secret" in text.get_content()
    async with create_sessionmaker(engine)() as session:
        stored = await session.get(OutboxEmail, row.id)
    assert stored is not None
    assert stored.status == "sent"
    if env == "production":
        assert stored.text_body is None
        assert stored.html_body is None
    else:
        assert "token=one-time-secret" in (stored.text_body or "")
        assert "token=one-time-secret" in (stored.html_body or "")
