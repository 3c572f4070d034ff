"""Series the app keeps as it serves: requests in flight, database connections in use, and
labels that stay bounded whatever paths are asked for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import text

from backline.app import Backline
from backline.config import Settings
from tests.scrape import label_values, value

TOKEN = "scraper-token-0123456789-abcdef"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, metrics_token=TOKEN)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    return response.text


def in_flight(text: str) -> float:
    found = value(text, "backline_http_requests_in_flight")
    assert found is not None
    return found


async def test_requests_in_flight_count_the_ones_being_answered(
    client: httpx.AsyncClient,
) -> None:
    alone = in_flight(await scrape(client))  # the scrape itself is one
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"held":'
        await release.wait()
        yield b" true}"

    held = asyncio.create_task(
        client.post("/test/log", content=body(), headers={"Content-Type": "application/json"})
    )
    try:
        for _ in range(500):  # until the held request has begun, bounded
            during = in_flight(await scrape(client))
            if during != alone:
                break
            await asyncio.sleep(0.01)
        assert during == alone + 1
    finally:
        release.set()
        assert (await held).status_code == 200
    assert in_flight(await scrape(client)) == alone


async def test_connections_lent_by_the_pool_are_counted(
    app: Backline, client: httpx.AsyncClient
) -> None:
    def in_use(text: str) -> float | None:
        return value(text, "backline_db_pool_connections_in_use")

    idle = in_use(await scrape(client))
    assert idle is not None
    async with app.state.engine.connect() as first, app.state.engine.connect() as second:
        await first.execute(text("SELECT 1"))
        await second.execute(text("SELECT 1"))
        assert in_use(await scrape(client)) == idle + 2
    assert in_use(await scrape(client)) == idle


async def _ask_random_paths(client: httpx.AsyncClient) -> list[str]:
    """Unknown paths, and known routes with fresh IDs and query strings: each path unseen."""
    random = [f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}" for _ in range(15)]
    ids = [f"/api/tracks/{uuid.uuid4()}" for _ in range(15)]
    queries = [f"/api/tracks/{uuid.uuid4()}?secret={uuid.uuid4().hex}", "/healthz?x=1"]
    for path in [*random, *ids, *queries]:
        assert (await client.get(path)).status_code < 500
        assert (await client.post(path, json={})).status_code < 500
    return [*random, *ids, *queries]


async def test_route_labels_stay_bounded_whatever_paths_are_asked_for(
    client: httpx.AsyncClient,
) -> None:
    await scrape(client)  # so that the scrape's own route is among the first scrape's
    asked = await _ask_random_paths(client)
    first = await scrape(client)
    routes = label_values(first, "backline_http_requests_total", "route")
    assert {"/api/tracks/{track_id}", "/healthz", "<unmatched>"} <= routes
    fresh = {part for path in asked for part in path.replace("?", "/").split("/") if len(part) > 30}
    assert not any(part in route for route in routes for part in fresh)  # no ID, no query
    # More unseen paths add no series.
    await _ask_random_paths(client)
    second = await scrape(client)
    for name in ("backline_http_requests_total", "backline_http_request_duration_seconds_count"):
        assert label_values(second, name, "route") == label_values(first, name, "route")
