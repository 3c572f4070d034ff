"""SMTP down under a served Backline and a `backline worker`, then back.

Messages caused by requests while the mail server is down are kept in the outbox, each failed
attempt recorded; once the server is back, and each message's retry is due, the worker
delivers every one of them, each once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from backline.config import Settings
from backline.db import create_engine, create_sessionmaker, utcnow
from backline.email.models import OutboxEmail
from tests.conftest import free_port
from tests.email.conftest import SMTPSink
from tests.resilience.conftest import add_account, background, settings_env
from tests.served import served

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PEOPLE = 6


def smtp_env(database_url: str, port: int) -> dict[str, str]:
    return settings_env(
        database_url,
        BACKLINE_EMAIL_BACKEND="smtp",
        BACKLINE_SMTP_HOST="127.0.0.1",
        BACKLINE_SMTP_PORT=str(port),
        BACKLINE_SMTP_STARTTLS="false",
        BACKLINE_EMAIL_TIMEOUT="2",
    )


async def test_smtp_down_keeps_every_message_and_delivers_each_once_afterwards(
    own_database: str, tmp_path: Path
) -> None:
    sink = SMTPSink(port=free_port())  # not started: the mail server is down
    addresses = [f"person{i}@example.com" for i in range(PEOPLE)]
    for address in addresses:
        await add_account(own_database, address)
    env = smtp_env(own_database, sink.port)
    engine = create_engine(Settings(env="test", database_url=own_database))
    sessions = create_sessionmaker(engine)

    async def rows() -> list[OutboxEmail]:
        async with sessions() as session:
            return list(await session.scalars(select(OutboxEmail)))

    try:
        with (
            served(tmp_path / "serve", **env) as server,
            background(["worker", "--batch-size", "4"], tmp_path / "worker", "worker", **env),
        ):
            async with asyncio.timeout(120), httpx.AsyncClient(base_url=server.url) as client:
                answers = await asyncio.gather(
                    *(
                        client.post(
                            "/api/auth/forgot-password", json={"email": address}, timeout=30
                        )
                        for address in addresses
                    )
                )
                assert [a.status_code for a in answers] == [202] * PEOPLE

                deadline = time.monotonic() + 60  # each message tried once, and kept
                while not (
                    len(found := await rows()) == PEOPLE
                    and all(r.attempts >= 1 and r.status == "pending" for r in found)
                ):
                    assert time.monotonic() < deadline, [(r.status, r.attempts) for r in found]
                    await asyncio.sleep(0.2)
                assert all(r.last_error for r in found)
                assert sink.received == []

                sink.start()
                async with sessions() as session, session.begin():  # as if the backoff passed
                    await session.execute(update(OutboxEmail).values(next_attempt_at=utcnow()))
                deadline = time.monotonic() + 60
                while any(r.status != "sent" for r in await rows()):
                    assert time.monotonic() < deadline, "messages were not delivered"
                    await asyncio.sleep(0.2)
        counts = sink.by_message_id()
        assert len(counts) == PEOPLE
        assert set(counts.values()) == {1}
        assert sorted(r for item in sink.received for r in item.rcpt_tos) == sorted(addresses)
    finally:
        sink.stop()
        await engine.dispose()
