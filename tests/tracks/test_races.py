"""Contention on PostgreSQL: two uploads claiming one track at once, verifiers sharing a queue.

These run on PostgreSQL only: row locks are what decide them, and SQLite has none (a writer
there locks the whole database, which serializes everything by itself).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.app import Backline
from backline.config import Settings
from backline.db import create_engine
from backline.tracks.models import Track
from backline.tracks.verifier import Verifier
from tests.accounts.conftest import GENEROUS_LIMITS
from tests.conftest import LogCapture
from tests.tracks.conftest import draft, wav
from tests.tracks.test_uploads import completed, stored_files

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_server", ["postgres"], indirect=True),
]


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    # Waiting on the test's lock counts against the statement timeout: give it room.
    return make_settings(
        database_url=database_url, rate_limits=GENEROUS_LIMITS, db_statement_timeout=30
    )


WAITING_ON_LOCKS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def all_waiting(engine: AsyncEngine, tasks: list[asyncio.Task[Any]]) -> None:
    """Until every task's session waits on a lock the test holds (bounded: about 10 s)."""
    async with engine.connect() as watcher:
        for _ in range(200):
            early = [task.result() for task in tasks if task.done()]
            assert not early, f"finished before reaching the held lock: {early}"
            waiting = (await watcher.execute(WAITING_ON_LOCKS)).scalar()
            await watcher.rollback()  # PostgreSQL keeps one activity snapshot per transaction
            if waiting == len(tasks):
                return
            await asyncio.sleep(0.05)
    pytest.fail(f"{len(tasks)} sessions never all reached the held lock")


async def test_two_uploads_released_together_one_claims_the_other_is_refused(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    """Both requests reach the claim while the track's row is held elsewhere, then go at once.

    Under the claim's row lock the second reads the first's claim and is refused before its
    body is read; without it both would read the track free and both take it.
    """
    track = await draft(client, artist)
    bodies = {"a": wav(0.25), "b": wav(0.5)}
    go_on = asyncio.Event()

    async def held_body(data: bytes) -> AsyncIterator[bytes]:
        yield data[:1000]
        await go_on.wait()  # the claim's winner holds it while this waits
        yield data[1000:]

    def put(name: str) -> asyncio.Task[httpx.Response]:
        return asyncio.create_task(
            client.put(
                f"/api/tracks/{track['id']}/audio",
                content=held_body(bodies[name]),
                headers={"Content-Type": "audio/wav", **artist},
            )
        )

    engine = create_engine(settings)
    try:
        async with engine.connect() as holder:
            transaction = await holder.begin()
            await holder.execute(
                text("SELECT id FROM tracks WHERE id = :id FOR UPDATE"), {"id": track["id"]}
            )
            racers = {"a": put("a"), "b": put("b")}
            await all_waiting(engine, list(racers.values()))
            await transaction.rollback()  # release them together
        try:
            done, _ = await asyncio.wait(
                racers.values(), timeout=10, return_when=asyncio.FIRST_COMPLETED
            )
            assert len(done) == 1, "neither upload was refused: both took the claim"
            refused = done.pop().result()
            assert refused.status_code == 409, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "upload_in_progress"
        finally:
            go_on.set()
            results = {name: await asyncio.wait_for(task, 10) for name, task in racers.items()}
    finally:
        await engine.dispose()
    winner = next(name for name, response in results.items() if response.status_code == 200)
    assert sorted(r.status_code for r in results.values()) == [200, 409]
    sha = hashlib.sha256(bodies[winner]).hexdigest()
    assert results[winner].json()["audio"]["sha256"] == sha
    now = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert now["audio"]["sha256"] == sha
    assert now["upload"] == {"state": "ready", "error": None}
    assert len(stored_files(settings)) == 1  # the loser stored nothing


async def test_verifiers_claiming_at_once_take_different_uploads_each_verified_once(
    app: Backline,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    logs: LogCapture,
) -> None:
    """Three claims read the queue together, then two verifiers drain the rest side by side.

    The test holds the table so that every claim has read (or is waiting to read) the queue
    before any of them takes a job: under `FOR UPDATE SKIP LOCKED` each then takes a different
    upload; without it all three would read the same oldest one and each verify it.
    """
    pending: dict[str, bytes] = {}
    for index in range(6):
        track = await draft(client, artist, title=f"Song {index}")
        data = wav(0.25 + index / 20)
        await completed(client, artist, track["id"], data)
        pending[track["id"]] = data

    def verifier() -> Verifier:
        return Verifier(app.state.settings, app.state.sessionmaker, app.state.storages)

    verifiers = [verifier() for _ in range(3)]
    engine = create_engine(settings)
    try:
        async with engine.connect() as holder:
            transaction = await holder.begin()
            # Blocks row locks (and writes) on tracks, not plain reads.
            await holder.execute(text("LOCK TABLE tracks IN EXCLUSIVE MODE"))
            claims = [asyncio.create_task(each.claim()) for each in verifiers]
            await all_waiting(engine, claims)
            await transaction.rollback()
        jobs = await asyncio.wait_for(asyncio.gather(*claims), 10)
    finally:
        await engine.dispose()
    taken = [job.track_id for job in jobs if job is not None]
    assert len(taken) == len(set(taken)) == 3, taken
    for each, job in zip(verifiers, jobs, strict=True):
        assert job is not None
        await each.verify(job)

    counts = await asyncio.gather(verifier().drain(), verifier().drain())
    assert sum(counts) == len(pending) - 3  # no upload was taken by both
    verified = [event["track_id"] for event in logs.named("upload_verified")]
    assert sorted(verified) == sorted(pending)
    async with app.state.sessionmaker() as session:
        query = select(Track.id, Track.upload_state, Track.audio_sha256)
        rows = (await session.execute(query)).all()
    assert {str(i): (state, sha) for i, state, sha in rows} == {
        i: ("ready", hashlib.sha256(data).hexdigest()) for i, data in pending.items()
    }
    assert len(stored_files(settings)) == len(pending)  # one object each, no stray copies
