"""The mixed load of `bench.mixed` in its quickest mode: four app processes and two workers on
PostgreSQL and Redis, every kind of request for a few seconds, and not one error."""

from __future__ import annotations

import asyncio

import pytest
from bench import mixed

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


async def test_the_mixed_load_answers_every_request_as_expected(
    postgres_url: str, redis_url: str
) -> None:
    # The fixtures skip the test (or fail it in CI) when PostgreSQL or Redis is missing; the
    # load makes a database and a key prefix of its own on the same servers.
    tally = await asyncio.to_thread(mixed.load, seconds=3, users=6)

    assert dict(tally.errors) == {}
    assert {kind for kind, latencies in tally.latencies.items() if latencies} == set(mixed.KINDS)
    assert tally.queued >= 6  # each user's tour asks for one reset email
    assert tally.lost == 0
