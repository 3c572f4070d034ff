"""The outbox on SQLite and PostgreSQL: transactional enqueue, claims, retries, dead letters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backline.accounts import service as accounts
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker, utcnow
from backline.email import service as outbox
from backline.email.models import EmailStatus, OutboxEmail


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def queue(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, n: int = 1, **kw: object
) -> list[OutboxEmail]:
    async with sessions() as session, session.begin():
        return [
            await outbox.enqueue(
                session,
                settings=settings,
                template="verify_email",
                to_address=f"user{i}@example.com",
                to_name="User",
                context={"token": f"tok{i}", "expires_hours": 24},
                **kw,  # type: ignore[arg-type]
            )
            for i in range(n)
        ]


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEmail)) or 0)


async def test_an_email_exists_only_if_its_cause_commits(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    class Abort(Exception):
        pass

    async def sign_up(*, fail: bool) -> None:
        async with sessions() as session, session.begin():
            user = await accounts.create(
                session, email="new@example.com", password="long enough pw", display_name="New"
            )
            await outbox.enqueue(
                session,
                settings=settings,
                template="verify_email",
                to_address=user.email,
                context={"token": "t", "expires_hours": 24},
            )
            if fail:
                raise Abort

    with pytest.raises(Abort):
        await sign_up(fail=True)
    assert await count(sessions) == 0
    await sign_up(fail=False)
    assert await count(sessions) == 1


async def test_enqueue_renders_with_links_from_the_public_url(
    sessions: async_sessionmaker[AsyncSession],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(database_url=database_url, public_url="https://backline.example")
    [row] = await queue(sessions, settings)
    assert row.status == "pending"
    assert row.attempts == 0
    assert "https://backline.example/verify-email?token=tok0" in (row.text_body or "")
    assert 'href="https://backline.example/verify-email?token=tok0"' in (row.html_body or "")
    assert row.subject == "Confirm your email address"
    assert row.idempotency_key.startswith("backline-")


async def test_an_idempotency_key_queues_once(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    [first] = await queue(sessions, settings, idempotency_key="verify:user-1:1")
    [second] = await queue(sessions, settings, idempotency_key="verify:user-1:1")
    assert first.id == second.id
    assert await count(sessions) == 1


async def test_claims_take_due_rows_once_and_lease_them(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await queue(sessions, settings, n=3)
    async with sessions() as session, session.begin():
        claimed = await outbox.claim(session, limit=2, lease=60)
    assert len(claimed) == 2
    assert all(row.status == "sending" and row.attempts == 1 for row in claimed)
    async with sessions() as session, session.begin():
        rest = await outbox.claim(session, limit=10, lease=60)
    assert len(rest) == 1
    assert {r.id for r in rest}.isdisjoint({r.id for r in claimed})
    async with sessions() as session, session.begin():
        assert await outbox.claim(session, limit=10, lease=60) == []


async def test_an_expired_lease_is_claimed_again(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await queue(sessions, settings)
    async with sessions() as session, session.begin():
        [first] = await outbox.claim(session, limit=1, lease=30)
    with time_machine.travel(utcnow() + timedelta(seconds=31), tick=False):
        async with sessions() as session, session.begin():
            [again] = await outbox.claim(session, limit=1, lease=30)
        assert again.id == first.id
        assert again.attempts == 2
        # The first worker's late report no longer applies: the row is someone else's now.
        async with sessions() as session, session.begin():
            assert not await outbox.mark_sent(
                session, email_id=first.id, attempt=1, keep_bodies=True
            )
        async with sessions() as session, session.begin():
            assert await outbox.mark_sent(session, email_id=first.id, attempt=2, keep_bodies=True)


def _attempts_within(window: timedelta, fraction: float) -> int:
    elapsed, attempts = 0.0, 0
    while True:
        step = min(outbox.BACKOFF_CAP, outbox.BACKOFF_BASE * 2.0**attempts) * fraction
        if elapsed + step > window.total_seconds():
            return attempts
        elapsed += step
        attempts += 1


async def test_temporary_failures_back_off_then_die_after_the_window(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await queue(sessions, settings)
    window = timedelta(hours=24)
    start = utcnow()
    delays: list[float] = []
    with time_machine.travel(start, tick=False) as clock:
        while True:
            async with sessions() as session, session.begin():
                [row] = await outbox.claim(session, limit=1, lease=60)
                status = await outbox.mark_failed(
                    session,
                    row=row,
                    reason="SMTP 451 try later",
                    permanent=False,
                    retry_after=None,
                    retry_window=window,
                )
            if status is EmailStatus.DEAD:
                break
            async with sessions() as session:
                stored = await session.get(OutboxEmail, row.id)
                assert stored is not None
                delay = (stored.next_attempt_at - utcnow()).total_seconds()
            delays.append(delay)
            async with sessions() as session, session.begin():  # not due before its time
                assert await outbox.claim(session, limit=1, lease=60) == []
            clock.shift(timedelta(seconds=delay + 1))
    assert delays[0] >= 15
    assert delays[1] > delays[0] / 2
    assert max(delays) <= 3600
    # About a day of attempts: every delay lies between half its capped exponential step and
    # the whole step, so the count lies between what those two schedules fit into the window.
    assert _attempts_within(window, 1.0) - 1 <= len(delays) <= _attempts_within(window, 0.5) + 1
    total = sum(delays)
    assert 20 * 3600 <= total + 3600 <= 26 * 3600
    async with sessions() as session:
        dead = await session.get(OutboxEmail, row.id)
    assert dead is not None
    assert dead.status == "dead"
    assert dead.last_error == "SMTP 451 try later"


async def test_a_permanent_failure_dies_at_once_with_its_reason(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await queue(sessions, settings)
    async with sessions() as session, session.begin():
        [row] = await outbox.claim(session, limit=1, lease=60)
        status = await outbox.mark_failed(
            session,
            row=row,
            reason="recipient refused: [550]",
            permanent=True,
            retry_after=None,
            retry_window=timedelta(hours=24),
        )
    assert status is EmailStatus.DEAD
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.last_error) == (
        "dead",
        1,
        "recipient refused: [550]",
    )


async def test_a_provider_hint_lengthens_the_wait(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await queue(sessions, settings)
    async with sessions() as session, session.begin():
        [row] = await outbox.claim(session, limit=1, lease=60)
        await outbox.mark_failed(
            session,
            row=row,
            reason="Resend 429",
            permanent=False,
            retry_after=900,
            retry_window=timedelta(hours=24),
        )
    async with sessions() as session:
        stored = await session.get(OutboxEmail, row.id)
    assert stored is not None
    assert (stored.next_attempt_at - utcnow()).total_seconds() > 890


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 30), (2, 60), (3, 120), (8, 3600), (20, 3600)]:
        samples = [outbox.backoff(attempt, rng=rng) for _ in range(200)]
        assert min(samples) >= step / 2
        assert max(samples) <= step
        assert len(set(samples)) > 150  # jittered, not fixed


@pytest.mark.postgres
async def test_concurrent_claims_on_postgres_skip_locked_rows(
    postgres_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=postgres_url)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        await queue(sessions, settings, n=10)
        async with sessions() as first, first.begin():
            mine = await outbox.claim(first, limit=4, lease=60)
            # While the first transaction still holds its rows, a second worker neither
            # waits for them nor takes them.
            async with sessions() as second, second.begin():
                theirs = await asyncio.wait_for(outbox.claim(second, limit=10, lease=60), 2)
        assert len(mine) == 4
        assert len(theirs) == 6
        assert {r.id for r in mine}.isdisjoint({r.id for r in theirs})
    finally:
        async with engine.begin() as connection:
            await connection.execute(OutboxEmail.__table__.delete())
        await engine.dispose()
