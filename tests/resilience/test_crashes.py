"""SIGKILL at a chosen moment, then a restart: a worker in the middle of delivering, and an app
process in the middle of receiving an upload. Nothing is lost, and nothing is done twice
beyond what the guarantees allow (an email at least once, every attempt with one Message-ID).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import func, select, update

from backline.accounts.models import Role
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker, utcnow
from backline.email import service as outbox
from backline.email.models import OutboxEmail
from backline.tracks.models import Track
from tests.conftest import free_port
from tests.email.conftest import SMTPSink
from tests.resilience.conftest import SECRET, add_account, background, sign_in
from tests.resilience.test_smtp import smtp_env
from tests.served import served
from tests.tracks.conftest import wav

pytestmark = [pytest.mark.slow]

MESSAGES = 12
BATCH = 4


class HoldingSink(SMTPSink):
    """Takes every message's data, then holds its answer until released."""

    entered: threading.Event
    released: threading.Event

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        self.entered.set()
        for _ in range(600):  # bounded: 30 s at most
            if self.released.is_set():
                break
            await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.postgres
async def test_a_worker_killed_mid_delivery_loses_nothing_after_a_restart(
    own_database: str, tmp_path: Path
) -> None:
    sink = HoldingSink(port=free_port())
    sink.entered, sink.released = threading.Event(), threading.Event()
    sink.start()
    settings = Settings(env="test", database_url=own_database)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    env = smtp_env(own_database, sink.port)  # email timeout 2 s: a lease of 11 s
    try:
        async with sessions() as session, session.begin():
            for i in range(MESSAGES):
                await outbox.enqueue(
                    session, settings=settings, template="signup_attempt", to_address=f"k{i}@x.io"
                )
        command = ["worker", "--batch-size", str(BATCH)]
        async with asyncio.timeout(120):
            with background(command, tmp_path / "w1", "worker", **env) as first:
                deadline = time.monotonic() + 60
                while not sink.entered.is_set():  # a batch is on the wire
                    assert time.monotonic() < deadline, first.output
                    await asyncio.sleep(0.02)
                first.kill()
            sink.released.set()  # the server finishes taking what the dead worker sent

            with background(command, tmp_path / "w2", "worker", **env) as second:
                deadline = time.monotonic() + 60  # the dead worker's lease runs out first
                while (unsent := await count(sessions, OutboxEmail.status != "sent")) > 0:
                    assert time.monotonic() < deadline, f"{unsent} unsent\n{second.output}"
                    await asyncio.sleep(0.2)
        counts = sink.by_message_id()
        assert len(counts) == MESSAGES  # none lost
        assert sum(n - 1 for n in counts.values()) <= BATCH  # at most the batch in flight, again
        assert await count(sessions, OutboxEmail.attempts > 2) == 0
    finally:
        sink.released.set()
        sink.stop()
        await engine.dispose()


async def count(sessions: Any, condition: Any) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(OutboxEmail).where(condition)
        return int(await session.scalar(query) or 0)


async def test_an_app_process_killed_mid_upload_leaves_nothing_after_a_restart(
    tmp_path: Path,
) -> None:
    workdir, port = tmp_path / "serve", free_port()
    env = {"BACKLINE_ENV": "test", "BACKLINE_SECRET_KEY": SECRET}
    data = wav(seconds=4.0)
    uploads = workdir / "var" / "uploads"
    with served(workdir, port=port, **env) as server:
        await add_account(server.database_url, "artist@example.com", role=Role.ARTIST)
        async with asyncio.timeout(60), httpx.AsyncClient(base_url=server.url) as client:
            artist = await sign_in(client, "artist@example.com")
            track = (
                await client.post("/api/tracks", json={"title": "Kill"}, headers=artist)
            ).json()
            path = f"/api/tracks/{track['id']}"
            before = (await client.get(path, headers=artist)).json()
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                (
                    f"PUT {path}/audio HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
                    f"Content-Length: {len(data)}\r\nAuthorization: {artist['Authorization']}"
                    "\r\n\r\n"
                ).encode()
                + data[: len(data) // 2]
            )
            await writer.drain()
            deadline = time.monotonic() + 30
            while not any(p.stat().st_size for p in stored_files(uploads)):  # half of it is in
                assert time.monotonic() < deadline, "the upload never began"
                await asyncio.sleep(0.05)
            assert (await client.get(path, headers=artist)).json()["upload"]["state"] == (
                "receiving"
            )
            server.process.kill()  # SIGKILL, mid-body
            server.process.wait(timeout=10)
            writer.close()
    with served(workdir, port=port, **env) as server:  # the same directory and database
        async with asyncio.timeout(60), httpx.AsyncClient(base_url=server.url) as client:
            artist = await sign_in(client, "artist@example.com")
            after = (await client.get(path, headers=artist)).json()
            assert after["audio"] is None  # nothing half-stored
            assert stored_files(workdir / "var" / "storage") == []
            assert stored_files(uploads) == []  # the dead process's temporary file is gone
            # The dead upload's claim holds the track until its lease lapses (5 minutes),
            # then the sweep frees it: here the lease is made to lapse at once.
            busy = await client.put(
                f"{path}/audio", content=data, headers={"Content-Type": "audio/wav", **artist}
            )
            assert busy.status_code == 409, busy.text
            engine = create_engine(Settings(env="test", database_url=server.database_url))
            try:
                async with create_sessionmaker(engine)() as session, session.begin():
                    await session.execute(update(Track).values(upload_expires_at=utcnow()))
            finally:
                await engine.dispose()
            stored = await client.put(
                f"{path}/audio", content=data, headers={"Content-Type": "audio/wav", **artist}
            )
            assert stored.status_code == 200, stored.text
            assert stored.json()["title"] == before["title"]
            assert len(stored_files(workdir / "var" / "storage")) == 1


def stored_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
