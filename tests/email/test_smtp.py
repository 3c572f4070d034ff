"""SMTP delivery against a real SMTP server on loopback, faults included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.config import Settings
from backline.db import create_sessionmaker, utcnow
from backline.email import service as outbox
from backline.email.models import OutboxEmail
from tests.conftest import LogCapture
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SMTPSink


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def smtp_settings(
    make_settings: Callable[..., Settings], database_url: str, smtp_sink: SMTPSink
) -> Settings:
    return make_settings(
        database_url=database_url,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_starttls=False,
        email_timeout=2,
        email_from="Backline <hello@backline.example>",
        public_url="https://backline.example",
    )


async def queue(
    engine: AsyncEngine, settings: Settings, n: int, *, name: str = "Ann", prefix: str = "u"
) -> list[OutboxEmail]:
    async with create_sessionmaker(engine)() as session, session.begin():
        return [
            await outbox.enqueue(
                session,
                settings=settings,
                template="password_reset",
                to_address=f"{prefix}{i}@example.com",
                to_name=name,
                context={"token": f"reset-{prefix}{i}", "expires_minutes": 60},
            )
            for i in range(n)
        ]


async def statuses(engine: AsyncEngine) -> dict[str, int]:
    async with create_sessionmaker(engine)() as session:
        rows = (await session.scalars(select(OutboxEmail))).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


async def test_a_message_arrives_with_headers_both_parts_and_the_link(
    engine: AsyncEngine, smtp_settings: Settings, smtp_sink: SMTPSink, make_worker: Any
) -> None:
    [_row] = await queue(engine, smtp_settings, 1)
    worker = make_worker(smtp_settings)
    assert await worker.drain() == 1

    [received] = smtp_sink.received
    message = received.message
    assert received.rcpt_tos == ["u0@example.com"]
    assert received.mail_from == "hello@backline.example"
    assert message["To"] == "Ann <u0@example.com>"
    assert message["From"] == "Backline <hello@backline.example>"
    assert message["Subject"] == "Reset your password"
    assert message["Message-ID"].endswith("@backline.example>")
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    link = "https://backline.example/reset-password?token=reset-u0"
    assert link in text.get_content()
    assert f'href="{link}"' in html.get_content()
    assert await statuses(engine) == {"sent": 1}


async def test_header_injection_through_names_and_subjects_is_impossible(
    engine: AsyncEngine, smtp_settings: Settings, smtp_sink: SMTPSink, make_worker: Any
) -> None:
    evil = "Eve\r\nBcc: victim@evil.example\r\nX-Injected: yes"
    async with create_sessionmaker(engine)() as session, session.begin():
        await outbox.enqueue(
            session,
            settings=smtp_settings,
            template="track_approved",
            to_address="artist@example.com",
            to_name=evil,
            context={"title": "Song\nBcc: victim2@evil.example"},
        )
    await make_worker(smtp_settings).drain()
    [received] = smtp_sink.received
    message = received.message
    assert received.rcpt_tos == ["artist@example.com"]
    assert message["Bcc"] is None
    assert message["X-Injected"] is None
    assert "\n" not in str(message["Subject"])
    assert set(message.keys()) == {
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "MIME-Version",
        "Content-Type",
    }
    assert message["To"].addresses[0].display_name == "Eve Bcc: victim@evil.example X-Injected: yes"
    assert message["To"].addresses[0].addr_spec == "artist@example.com"


async def test_a_refused_recipient_is_dead_at_once_not_retried_for_a_day(
    engine: AsyncEngine, smtp_settings: Settings, smtp_sink: SMTPSink, make_worker: Any
) -> None:
    smtp_sink.refuse.add("u0@example.com")
    await queue(engine, smtp_settings, 1)
    await make_worker(smtp_settings).drain()
    async with create_sessionmaker(engine)() as session:
        row = (await session.scalars(select(OutboxEmail))).one()
    assert row.status == "dead"
    assert row.attempts == 1
    assert row.last_error is not None
    assert "550" in row.last_error


async def test_server_down_mid_run_then_back_delivers_each_message_exactly_once(
    engine: AsyncEngine, smtp_settings: Settings, smtp_sink: SMTPSink, make_worker: Any
) -> None:
    worker = make_worker(smtp_settings, batch_size=5)
    await queue(engine, smtp_settings, 10, prefix="a")
    assert await worker.run_once() == 5  # half delivered ...
    smtp_sink.stop()  # ... then the server goes away
    await queue(engine, smtp_settings, 10, prefix="b")
    assert await worker.drain() == 15
    assert await statuses(engine) == {"sent": 5, "pending": 15}
    assert len(smtp_sink.received) == 5

    smtp_sink.start()  # back, on the same port
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        assert await worker.drain() == 15
    assert await statuses(engine) == {"sent": 20}
    counts = smtp_sink.by_message_id()
    assert len(counts) == 20
    assert set(counts.values()) == {1}
    recipients = sorted(r for item in smtp_sink.received for r in item.rcpt_tos)
    assert recipients == sorted(
        [f"a{i}@example.com" for i in range(10)] + [f"b{i}@example.com" for i in range(10)]
    )


async def test_retries_carry_the_same_message_id(
    engine: AsyncEngine, smtp_settings: Settings, smtp_sink: SMTPSink, make_worker: Any
) -> None:
    [row] = await queue(engine, smtp_settings, 1)
    worker = make_worker(smtp_settings)
    await worker.drain()
    first_id = smtp_sink.received[0].message["Message-ID"]
    # The same row delivered again (as after a crash between delivery and record) keeps its ID.
    async with create_sessionmaker(engine)() as session, session.begin():
        stored = await session.get(OutboxEmail, row.id)
        assert stored is not None
        stored.status = "pending"
    await worker.drain()
    assert smtp_sink.received[1].message["Message-ID"] == first_id


async def test_tls_with_auth_and_a_private_ca(
    engine: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    smtp_tls_sink: tuple[SMTPSink, Path],
    make_worker: Any,
    logs: LogCapture,
) -> None:
    sink, ca_file = smtp_tls_sink
    settings = make_settings(
        database_url=database_url,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_starttls=not sink.implicit_tls,
        smtp_tls=sink.implicit_tls,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        smtp_ca_file=ca_file,
        email_timeout=3,
    )
    from backline.logging import configure_logging

    configure_logging(settings, stream=logs.stream)
    await queue(engine, settings, 1)
    await make_worker(settings).drain()
    assert len(sink.received) == 1
    assert await statuses(engine) == {"sent": 1}
    assert SMTP_PASSWORD not in logs.text


async def test_wrong_credentials_are_kept_for_retry(
    engine: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    smtp_tls_sink: tuple[SMTPSink, Path],
    make_worker: Any,
) -> None:
    sink, ca_file = smtp_tls_sink
    settings = make_settings(
        database_url=database_url,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_starttls=not sink.implicit_tls,
        smtp_tls=sink.implicit_tls,
        smtp_username=SMTP_USER,
        smtp_password="wrong-password",
        smtp_ca_file=ca_file,
        email_timeout=3,
    )
    await queue(engine, settings, 1)
    await make_worker(settings).drain()
    assert sink.received == []
    async with create_sessionmaker(engine)() as session:
        row = (await session.scalars(select(OutboxEmail))).one()
    assert row.status == "pending"
    assert row.last_error is not None
    assert "authentication" in row.last_error
    assert "wrong-password" not in row.last_error
