"""PostgreSQL connections terminated again and again under load, on a served Backline.

The test's own database has every connection to it ended (`pg_terminate_backend`, filtered by
the database's name) several times a second for a few seconds while clients sign up, create
drafts and read. Meanwhile each answer is a success or a 503 problem (never a 500, never a
dropped connection); afterwards the same process answers everything again, with no restart,
and every write is whole: each account has its confirmation email queued, each draft answered
201 exists.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from backline.accounts.models import Role, User
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.email.models import OutboxEmail
from backline.tracks.models import Track
from tests.resilience.conftest import add_account, settings_env, sign_in, terminate_connections
from tests.served import served

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FAULT_SECONDS = 4.0
CLIENTS = 6


async def test_terminated_connections_are_503_then_recovered_without_a_restart(
    own_database: str, tmp_path: Path
) -> None:
    await add_account(own_database, "artist@example.com", role=Role.ARTIST)
    env = settings_env(own_database, BACKLINE_DB_POOL_SIZE="4")
    with served(tmp_path / "serve", **env) as server:
        async with (
            asyncio.timeout(90),
            httpx.AsyncClient(base_url=server.url, timeout=15) as client,
        ):
            artist = await sign_in(client, "artist@example.com")
            numbers = itertools.count()
            answers: list[tuple[str, httpx.Response]] = []
            created: set[str] = set()
            registered: set[str] = set()
            stop = asyncio.Event()

            async def one_client(kind: int) -> None:
                while not stop.is_set():
                    n = next(numbers)
                    if kind == 0:  # a sign-up: an account and its email, or neither
                        email = f"new{n}@example.com"
                        response = await client.post(
                            "/api/auth/register",
                            json={
                                "email": email,
                                "password": "a long enough passphrase 9",
                                "display_name": f"New {n}",
                            },
                        )
                        if response.status_code == 202:
                            registered.add(email)
                        answers.append(("register", response))
                    elif kind == 1:
                        response = await client.post(
                            "/api/tracks", json={"title": f"Draft {n}"}, headers=artist
                        )
                        if response.status_code == 201:
                            created.add(response.json()["id"])
                        answers.append(("draft", response))
                    else:
                        path = "/api/me" if kind % 2 else "/api/tracks"
                        answers.append(("read", await client.get(path, headers=artist)))

            async def load(seconds: float) -> list[tuple[str, httpx.Response]]:
                answers.clear()
                stop.clear()
                tasks = [asyncio.create_task(one_client(kind)) for kind in range(CLIENTS)]
                await asyncio.sleep(seconds)
                stop.set()
                await asyncio.gather(*tasks)
                return list(answers)

            steady = await load(1.0)
            assert steady
            assert all(r.is_success for _, r in steady), summary(steady)

            terminated = 0

            async def terminate() -> None:
                nonlocal terminated
                deadline = time.monotonic() + FAULT_SECONDS
                while time.monotonic() < deadline:
                    terminated += await terminate_connections(own_database)
                    await asyncio.sleep(0.05)

            killer = asyncio.create_task(terminate())
            during = await load(FAULT_SECONDS)
            await killer
            assert terminated > 10, terminated
            refused = [r for _, r in during if not r.is_success]
            assert refused, "no request met a terminated connection"
            for response in refused:
                assert response.status_code == 503, summary(during)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "unavailable"
                assert response.headers["retry-after"]
            assert any(r.is_success for _, r in during)  # it kept serving between the kills

            recovered = await load(2.0)  # the same process, no restart
            assert recovered
            assert all(r.is_success for _, r in recovered), summary(recovered)
        assert "unhandled_exception" not in server.output

    engine = create_engine(Settings(env="test", database_url=own_database))
    try:
        async with create_sessionmaker(engine)() as session:
            users = set(
                (await session.scalars(select(User.email).where(User.email.like("new%")))).all()
            )
            mailed = set(
                (
                    await session.scalars(
                        select(OutboxEmail.to_address).where(OutboxEmail.template == "verify_email")
                    )
                ).all()
            )
            drafts = {str(i) for i in (await session.scalars(select(Track.id))).all()}
            assert await session.scalar(select(func.count()).select_from(User)) == len(users) + 1
    finally:
        await engine.dispose()
    assert registered <= users  # every account answered 202 exists ...
    assert users == mailed  # ... and no account is without its email, nor an email without it
    assert created <= drafts


def summary(answers: list[tuple[str, httpx.Response]]) -> str:
    counts = Counter((kind, r.status_code) for kind, r in answers)
    bad = next((r for _, r in answers if r.status_code >= 500 and r.status_code != 503), None)
    return f"{dict(counts)}; first 5xx other than 503: {bad.text[:500] if bad else None}"
