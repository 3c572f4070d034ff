"""The whole-request deadline: 504 problem+json, and the work is cancelled, not left running."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from backline.config import Settings
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
