"""The whole-request deadline: 504 problem+json, and the work is cancelled, not left running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from backline.config import Settings
from backline.middleware.deadline import TICK, Expiry, _Sweep
from tests.conftest import LogCapture
from tests.support import slow_probe


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, request_timeout=1.0)


async def test_a_request_past_its_deadline_gets_504_and_is_cancelled(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    before = (slow_probe.started, slow_probe.cancelled, slow_probe.finished)
    began = time.monotonic()
    response = await client.get("/test/slow?seconds=30", headers={"X-Request-ID": "late-1"})
    elapsed = time.monotonic() - began

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "deadline_exceeded"
    assert body["status"] == 504
    assert body["request_id"] == "late-1"
    assert elapsed < 5
    after = (slow_probe.started, slow_probe.cancelled, slow_probe.finished)
    assert after == (before[0] + 1, before[1] + 1, before[2])
    [warning] = logs.named("deadline_exceeded")
    assert warning["route"] == "/test/slow"
    assert logs.named("request")[-1]["status"] == 504


async def test_a_request_within_its_deadline_is_untouched(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/slow?seconds=0.05")
    assert response.status_code == 200
    assert response.json() == {"status": "done"}


async def test_a_route_may_extend_its_own_deadline(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/patient?seconds=1.3")
    assert response.status_code == 200


def _sweep() -> _Sweep:
    return _Sweep(asyncio.get_running_loop())


async def test_an_expiry_turns_its_own_cancellation_into_timeout_error() -> None:
    sweep = _sweep()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with Expiry(sweep, 0.05) as expiry:
            await asyncio.sleep(5)
    assert expiry.expired()
    assert time.monotonic() - began < 0.05 + TICK + 1  # at most a tick late, and some slack
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert not sweep.open


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    sweep = _sweep()

    async def work() -> None:
        async with Expiry(sweep, 30):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(work())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not sweep.open


async def test_a_deadline_moved_or_lifted_does_not_fire() -> None:
    sweep = _sweep()
    async with Expiry(sweep, 0.05) as expiry:
        expiry.reschedule(None)
        await asyncio.sleep(0.05 + 2 * TICK)
    assert not expiry.expired()
    async with Expiry(sweep, 0.05) as expiry:
        expiry.reschedule(sweep.loop.time() + 30)
        await asyncio.sleep(0.05 + 2 * TICK)
    assert not expiry.expired()


async def test_the_sweep_stops_when_no_request_is_in_flight() -> None:
    sweep = _sweep()
    async with Expiry(sweep, 30):
        assert sweep.timer is not None
        await asyncio.sleep(2 * TICK)
    await asyncio.sleep(2 * TICK)
    assert sweep.timer is None
