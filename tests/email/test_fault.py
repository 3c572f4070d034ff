"""At-least-once under a crash: a worker process killed mid-run loses no message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.email import service as outbox
from backline.email.models import OutboxEmail
from tests.email.conftest import SMTPSink

MESSAGES = 300
BATCH = 10


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


async def unsent(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(OutboxEmail).where(OutboxEmail.status != "sent")
        return int(await session.scalar(query) or 0)


@pytest.mark.slow
@pytest.mark.postgres
async def test_killing_a_worker_mid_run_loses_nothing(
    make_settings: Callable[..., Settings],
    database_url: str,
    smtp_sink: SMTPSink,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=database_url)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            for i in range(MESSAGES):
                await outbox.enqueue(
                    session,
                    settings=settings,
                    template="signup_attempt",
                    to_address=f"crash{i}@example.com",
                )
        env = {
            **os.environ,
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": database_url,
            "BACKLINE_EMAIL_BACKEND": "smtp",
            "BACKLINE_SMTP_HOST": "127.0.0.1",
            "BACKLINE_SMTP_PORT": str(smtp_sink.port),
            "BACKLINE_SMTP_STARTTLS": "false",
            "BACKLINE_EMAIL_TIMEOUT": "1",
            "BACKLINE_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "backline", "worker", "--batch-size", str(BATCH)]
        workers = [
            subprocess.Popen(  # noqa: ASYNC220 - starting a process does not block
                command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 30
            while len(smtp_sink.received) < MESSAGES // 4:
                assert time.monotonic() < deadline, "workers made no progress"
                await asyncio.sleep(0.01)
            workers[0].send_signal(signal.SIGKILL)  # mid-batch, no chance to record anything
            workers[0].wait(timeout=5)
            # The survivor finishes the rest, and reclaims the dead worker's batch once its
            # lease (8 s here) runs out.
            deadline = time.monotonic() + 60
            while await unsent(sessions) > 0:
                assert time.monotonic() < deadline, "messages were lost"
                await asyncio.sleep(0.1)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(timeout=15)
        counts = smtp_sink.by_message_id()
        assert len(counts) == MESSAGES  # none lost
        duplicated = sum(n - 1 for n in counts.values())
        assert duplicated <= BATCH  # at most the batch the dead worker had in flight
        assert workers[1].returncode == 0  # the survivor stopped cleanly on SIGTERM
    finally:
        async with engine.begin() as connection:
            await connection.execute(OutboxEmail.__table__.delete())
        await engine.dispose()
