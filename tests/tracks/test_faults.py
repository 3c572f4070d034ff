"""Upload faults over a real socket: a client that vanishes mid-body, a slow-loris body, and a
store that is down. Each leaves nothing behind: no temporary file, no object, no changed row."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager

from backline.accounts.models import Role
from backline.app import Backline
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login
from tests.conftest import BUCKET, LogCapture, free_port
from tests.tracks.conftest import draft, wav


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        max_audio_bytes=2_000_000,
        upload_timeout=1.0,
    )


@pytest.fixture
async def server(app: Backline) -> AsyncIterator[int]:
    """The app on a real loopback socket (its lifespan is already running)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    runner = uvicorn.Server(config)
    task = asyncio.create_task(runner.serve())
    for _ in range(200):
        if runner.started:
            break
        await asyncio.sleep(0.02)
    yield port
    runner.should_exit = True
    await asyncio.wait_for(task, 10)


def leftovers(settings: Settings) -> list[str]:
    found = []
    for root in (settings.var_dir / "uploads", settings.effective_storage_dir):
        if root.exists():
            found += [str(p) for p in root.rglob("*") if p.is_file()]
    return found


async def raw_put(port: int, path: str, auth: dict[str, str], length: int, body: bytes) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
        f"Authorization: {auth['Authorization']}\r\nContent-Length: {length}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


async def settled(
    client: httpx.AsyncClient, track_id: str, auth: dict[str, str], settings: Settings
) -> dict[str, Any]:
    """The track once the server has finished with the broken upload (bounded wait)."""
    body: dict[str, Any] = {}
    for _ in range(100):
        body = (await client.get(f"/api/tracks/{track_id}", headers=auth)).json()
        if (body["upload"] or {}).get("state") != "receiving" and not leftovers(settings):
            break
        await asyncio.sleep(0.05)
    return body


async def test_a_client_that_disconnects_mid_upload_leaves_nothing(
    server: int,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    logs: LogCapture,
) -> None:
    track = await draft(client, artist)
    data = wav(seconds=4.0)  # 64 KB
    _, writer = await raw_put(
        server, f"/api/tracks/{track['id']}/audio", artist, len(data), data[: len(data) // 2]
    )
    await asyncio.sleep(0.2)  # the server is now streaming the body to its temporary file
    busy = await client.get(f"/api/tracks/{track['id']}", headers=artist)
    assert busy.json()["upload"]["state"] == "receiving"
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    after = await settled(client, track["id"], artist, settings)
    assert after["upload"] is None  # as before the attempt
    assert after["audio"] is None
    assert leftovers(settings) == []
    assert logs.named("unhandled_exception") == []  # a client hanging up is not a server error
    assert logs.named("client_disconnected")
    retry = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert retry.status_code == 200  # the track is not left claimed


async def test_a_slow_loris_body_is_cut_when_it_stalls(
    server: int, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav(seconds=4.0)
    reader, writer = await raw_put(
        server, f"/api/tracks/{track['id']}/audio", artist, len(data), data[:100]
    )
    try:
        for index in range(100, 400, 100):  # a trickle, each gap well inside the idle limit
            await asyncio.sleep(0.3)
            writer.write(data[index : index + 100])
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)  # then silence: cut after 1 s
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"upload_stalled"' in answer
    after = await settled(client, track["id"], artist, settings)
    assert after["upload"] is None
    assert after["audio"] is None
    assert leftovers(settings) == []


async def test_a_store_that_is_down_is_a_503_and_changes_no_row(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    settings = make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        storage_backend="s3",
        s3_bucket=BUCKET,
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        s3_region="us-east-1",
        upload_timeout=2.0,
    )
    await make_user("down@example.com", role=Role.ARTIST, display_name="Down")
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        auth = bearer(await login(client, "down@example.com"))
        track = await draft(client, auth)
        before = (await client.get(f"/api/tracks/{track['id']}", headers=auth)).json()
        put = await client.put(
            f"/api/tracks/{track['id']}/audio",
            content=wav(),
            headers={"Content-Type": "audio/wav", **auth},
        )
        assert put.status_code == 503, put.text
        assert put.json()["code"] == "storage_unavailable"
        after = (await client.get(f"/api/tracks/{track['id']}", headers=auth)).json()
    assert after == before
    assert leftovers(settings) == []
