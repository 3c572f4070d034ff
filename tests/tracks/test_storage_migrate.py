"""`backline storage migrate --to s3` (see `backline.storage.migrate`): every object moves,
verified, resumably; what is damaged stays put and is reported."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from backline.app import Backline
from backline.cli import app as cli
from backline.config import Settings
from backline.storage import create_storages
from backline.storage.migrate import migrate, pending
from backline.tracks.models import Track
from tests.s3servers import S3Server
from tests.tracks.conftest import cover, draft, wav


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database_url: str, s3_server: S3Server
) -> Settings:
    from tests.accounts.conftest import GENEROUS_LIMITS

    # Local is where new objects go; S3 is configured, so objects there can be served too.
    return make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        max_audio_bytes=400_000,
        s3_bucket=s3_server.bucket,
        s3_endpoint_url=s3_server.endpoint,
        s3_region="us-east-1",
    )


def local_files(settings: Settings) -> list[str]:
    root = settings.effective_storage_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def backends(app: Backline) -> dict[str, str | None]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(Track.audio_key, Track.audio_backend, Track.artwork_key, Track.artwork_backend)
        )
        found: dict[str, str | None] = {}
        for audio_key, audio_backend, artwork_key, artwork_backend in rows:
            if audio_key:
                found[audio_key] = audio_backend
            if artwork_key:
                found[artwork_key] = artwork_backend
    return found


async def tracks_with_audio(
    client: httpx.AsyncClient, artist: dict[str, str], count: int
) -> list[dict[str, Any]]:
    made = []
    for index in range(count):
        track = await draft(client, artist, title=f"Song {index}")
        uploaded = await client.put(
            f"/api/tracks/{track['id']}/audio",
            content=wav(0.25 + index / 10),
            headers={"Content-Type": "audio/wav", **artist},
        )
        assert uploaded.status_code == 200, uploaded.text
        made.append(uploaded.json())
    art = await client.put(
        f"/api/tracks/{made[0]['id']}/artwork",
        content=cover(),
        headers={"Content-Type": "image/png", **artist},
    )
    assert art.status_code == 200, art.text
    return made


def invoke(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("BACKLINE_ENV", "test")
    monkeypatch.setenv("BACKLINE_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("BACKLINE_STORAGE_DIR", str(settings.effective_storage_dir))
    monkeypatch.setenv("BACKLINE_S3_BUCKET", str(settings.s3_bucket))
    monkeypatch.setenv("BACKLINE_S3_ENDPOINT_URL", str(settings.s3_endpoint_url))
    monkeypatch.setenv("BACKLINE_S3_REGION", "us-east-1")
    # The command runs its own event loop: give it a thread.
    return anyio.to_thread.run_sync(CliRunner().invoke, cli, list(args))


async def test_migrate_moves_verifies_switches_and_reports_damage(
    app: Backline,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = await tracks_with_audio(client, artist, 3)
    assert len(local_files(settings)) == 4
    damaged_path = sorted(settings.effective_storage_dir.rglob("*.wav"))[0]
    damaged_key = str(damaged_path.relative_to(settings.effective_storage_dir))
    data = bytearray(damaged_path.read_bytes())
    damaged_sha = hashlib.sha256(data).hexdigest()
    data[60] ^= 0xFF
    damaged_path.write_bytes(bytes(data))

    first = await invoke(settings, monkeypatch, "storage", "migrate", "--to", "s3")
    assert first.exit_code == 1, first.output
    assert "moved 3 objects to s3: 0 missing, 1 damaged" in first.stdout
    assert f"damaged   {damaged_key}" in first.stderr
    assert "Migrating" in first.stderr  # the progress bar
    where = await backends(app)
    assert where.pop(damaged_key) == "local"
    assert set(where.values()) == {"s3"}
    assert local_files(settings) == [damaged_key]
    in_s3 = s3_server.objects()
    assert sorted(in_s3) == sorted(where)

    # Served from S3 now, while the app still writes new objects locally: every moved track's
    # link is its own backend's, and it serves that track's bytes; the damaged one stays local.
    served_from_s3 = 0
    for track in made:
        link = (await client.get(f"/api/tracks/{track['id']}/audio-url", headers=artist)).json()
        if track["audio"]["sha256"] == damaged_sha:
            assert not link["url"].startswith(s3_server.endpoint), link
            local = urlsplit(link["url"])
            fetched = await client.get(f"{local.path}?{local.query}")
            assert fetched.status_code == 200
            assert fetched.content == bytes(data)  # the local copy, damaged as it was left
            continue
        assert link["url"].startswith(s3_server.endpoint), link
        async with httpx.AsyncClient() as outside:
            fetched = await outside.get(link["url"])
        assert fetched.status_code == 200
        assert hashlib.sha256(fetched.content).hexdigest() == track["audio"]["sha256"]
        served_from_s3 += 1
    assert served_from_s3 == 2

    again = await invoke(settings, monkeypatch, "storage", "migrate", "--to", "s3")
    assert "moved 0 objects to s3: 0 missing, 1 damaged" in again.stdout  # idempotent
    assert s3_server.objects() == in_s3

    verified = await invoke(settings, monkeypatch, "storage", "verify")
    assert "checked 4 objects: 0 missing, 1 mismatched" in verified.stdout


async def test_migrate_resumes_after_an_interruption(
    app: Backline,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    s3_server: S3Server,
) -> None:
    await tracks_with_audio(client, artist, 3)
    storages = create_storages(settings)
    async with app.state.sessionmaker() as session:
        items = await pending(session, target="s3", primary="local")
    assert len(items) == 4
    # A copy left half-way by an earlier run, under the key the next object will use.
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_server.bucket, Key=items[1].key, Body=b"half a copy")
    calls = 0

    def stop_after_one() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt  # the operator's Ctrl-C between two objects

    with pytest.raises(KeyboardInterrupt):
        await migrate(app.state.sessionmaker, storages, items, target="s3", progress=stop_after_one)
    assert list((await backends(app)).values()).count("s3") == 1
    async with app.state.sessionmaker() as session:
        rest = await pending(session, target="s3", primary="local")
    assert len(rest) == 3
    report = await migrate(
        app.state.sessionmaker, storages, rest, target="s3", progress=lambda: None
    )
    assert report.moved == 3
    assert report.ok
    in_s3 = s3_server.objects()
    assert len(in_s3) == 4
    assert in_s3[items[1].key] != b"half a copy"
    assert hashlib.sha256(in_s3[items[1].key]).hexdigest() == items[1].sha256
    assert local_files(settings) == []


async def test_an_object_replaced_meanwhile_is_left_alone(
    app: Backline,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    s3_server: S3Server,
) -> None:
    made = await tracks_with_audio(client, artist, 1)
    storages = create_storages(settings)
    async with app.state.sessionmaker() as session:
        items = await pending(session, target="s3", primary="local")
    item = next(i for i in items if i.kind == "audio")
    old = settings.effective_storage_dir / item.key
    old_bytes = old.read_bytes()
    replaced = await client.put(
        f"/api/tracks/{made[0]['id']}/audio",
        content=wav(1.0),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert replaced.status_code == 200
    old.write_bytes(old_bytes)  # as if the replacement came between the copy and the switch
    report = await migrate(
        app.state.sessionmaker, storages, [item], target="s3", progress=lambda: None
    )
    assert report.moved == 0
    assert report.changed == [item.key]
    assert s3_server.objects() == {}  # the copy nobody points at is removed
    assert set((await backends(app)).values()) == {"local"}


async def test_a_second_run_working_from_a_stale_list_leaves_the_first_ones_copies(
    app: Backline,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    s3_server: S3Server,
) -> None:
    await tracks_with_audio(client, artist, 2)
    storages = create_storages(settings)
    async with app.state.sessionmaker() as session:
        stale = await pending(session, target="s3", primary="local")
    first = await migrate(
        app.state.sessionmaker,
        storages,
        stale,
        target="s3",
        keep_source=True,
        progress=lambda: None,
    )
    assert first.moved == 3
    second = await migrate(
        app.state.sessionmaker, storages, stale, target="s3", progress=lambda: None
    )
    assert second.moved == 0
    assert second.changed == []
    in_s3 = s3_server.objects()
    assert sorted(in_s3) == sorted(item.key for item in stale)  # nothing deleted under a row
    for item in stale:
        assert hashlib.sha256(in_s3[item.key]).hexdigest() == item.sha256
    assert set((await backends(app)).values()) == {"s3"}
