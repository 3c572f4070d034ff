"""The backlogs `/metrics` reads from the database: emails waiting in the outbox and the age of
the oldest, direct uploads waiting for verification; and a scrape when the database is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.app import Backline
from backline.config import Settings
from backline.db import create_sessionmaker, utcnow
from backline.email.models import OutboxEmail
from backline.tracks.models import Track
from tests.scrape import value

TOKEN = "scraper-token-0123456789-abcdef"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, metrics_token=TOKEN)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    return response.text


def email(status: str, age: timedelta) -> OutboxEmail:
    moment = utcnow() - age
    return OutboxEmail(
        idempotency_key=f"k-{uuid.uuid4()}",
        template="verify_email",
        to_address="someone@example.com",
        subject="s",
        status=status,
        created_at=moment,
        updated_at=moment,
        next_attempt_at=moment,
    )


async def test_an_empty_backlog_reads_zero(client: httpx.AsyncClient) -> None:
    text = await scrape(client)
    assert value(text, "backline_outbox_messages", status="pending") == 0
    assert value(text, "backline_outbox_messages", status="sending") == 0
    assert value(text, "backline_outbox_oldest_waiting_age_seconds") == 0
    assert value(text, "backline_upload_verifications_waiting") == 0


async def test_waiting_emails_and_verifications_are_read_at_each_scrape(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        session.add_all(
            [
                email("pending", timedelta(minutes=5)),
                email("pending", timedelta(minutes=1)),
                email("sending", timedelta(hours=2)),
                email("sent", timedelta(days=3)),  # delivered: neither counted nor aged
                email("dead", timedelta(days=2)),
            ]
        )
        far = utcnow() + timedelta(days=1)
        session.add_all(
            [
                Track(title="a", upload_state="verifying", upload_expires_at=far),
                Track(title="b", upload_state="verifying", upload_expires_at=far),
                Track(title="c", upload_state="awaiting_upload", upload_expires_at=far),
                Track(title="d", upload_state="ready"),
            ]
        )
    text = await scrape(client)
    assert value(text, "backline_outbox_messages", status="pending") == 2
    assert value(text, "backline_outbox_messages", status="sending") == 1
    age = value(text, "backline_outbox_oldest_waiting_age_seconds")
    assert age is not None
    assert 2 * 3600 <= age < 3 * 3600  # the one being sent, two hours old
    assert value(text, "backline_upload_verifications_waiting") == 2


async def test_a_scrape_without_the_database_answers_the_rest(
    app_factory: Callable[[Settings], Backline], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        database_url="postgresql://nobody@127.0.0.1:1/none", metrics_token=TOKEN
    )
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            text = await scrape(client)
    assert "backline_http_requests_total" in text
    assert value(text, "backline_outbox_messages", status="pending") is None
    assert value(text, "backline_upload_verifications_waiting") is None
