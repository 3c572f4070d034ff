"""Track endpoints: artists' drafts, streamed audio with SHA-256, signed links, submission."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from backline.accounts.models import Role
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login
from tests.s3servers import S3Server
from tests.tracks.conftest import COMPLETE, digest_header, draft, upload_cover, wav


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


def objects(settings: Settings) -> list[Path]:
    root = settings.effective_storage_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_only_artists_create_tracks(
    client: httpx.AsyncClient, make_user: Any, artist: dict[str, str]
) -> None:
    await make_user("fan@example.com", display_name="Fan")
    fan = bearer(await login(client, "fan@example.com"))
    refused = await client.post("/api/tracks", json={"title": "Mine"}, headers=fan)
    assert refused.status_code == 403
    created = await draft(client, artist)
    assert created["status"] == "draft"
    assert created["audio"] is None


async def test_other_peoples_tracks_are_404_never_403(
    client: httpx.AsyncClient, make_user: Any, artist: dict[str, str]
) -> None:
    track = await draft(client, artist)
    await make_user("other@example.com", role=Role.ARTIST, display_name="Other")
    other = bearer(await login(client, "other@example.com"))
    for method, suffix, kwargs in [
        ("GET", "", {}),
        ("PATCH", "", {"json": {"title": "Stolen"}}),
        ("DELETE", "", {}),
        ("PUT", "/audio", {"content": wav(), "headers": {"Content-Type": "audio/wav"}}),
        ("GET", "/audio-url", {}),
        ("POST", "/submit", {}),
    ]:
        headers = {**kwargs.pop("headers", {}), **other}
        response = await client.request(
            method, f"/api/tracks/{track['id']}{suffix}", headers=headers, **kwargs
        )
        assert response.status_code == 404, (method, suffix)
    missing = await client.get("/api/tracks/00000000-0000-4000-8000-000000000000", headers=artist)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"isrc": "US-RC1-76-0783"}, "isrc"),
        ({"isrc": "12RC17607839"}, "isrc"),
        ({"credits": [{"name": "A", "role": "w", "split": 50}]}, "credits"),
        ({"language": "English"}, "language"),
        ({"title": ""}, "title"),
    ],
)
async def test_metadata_rules(
    client: httpx.AsyncClient, artist: dict[str, str], fields: dict[str, Any], field: str
) -> None:
    track = await draft(client, artist)
    response = await client.patch(f"/api/tracks/{track['id']}", json=fields, headers=artist)
    assert response.status_code == 422
    assert field in str(response.json()["errors"])


async def test_audio_streams_in_with_its_digest_and_reads_back_by_signed_link(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    uploaded = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **digest_header(data), **artist},
    )
    assert uploaded.status_code == 200, uploaded.text
    audio = uploaded.json()["audio"]
    assert audio["sha256"] == hashlib.sha256(data).hexdigest()
    assert audio["size"] == len(data)
    assert audio["format"] == "wav"
    assert 0.2 < audio["duration_seconds"] < 0.3
    assert audio["sample_rate"] == 8000

    link = (await client.get(f"/api/tracks/{track['id']}/audio-url", headers=artist)).json()
    assert link["expires_in"] == 300
    path = urlsplit(link["url"])
    fetched = await client.get(f"{path.path}?{path.query}")
    assert fetched.status_code == 200
    assert fetched.content == data
    tampered = await client.get(f"{path.path}?{path.query[:-3]}abc")
    assert tampered.status_code == 404

    replaced = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(0.5),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert replaced.status_code == 200
    assert len(objects(settings)) == 1  # the replaced object is gone


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (
            wav(),
            {"Content-Digest": "sha-256=:" + base64.b64encode(b"x" * 32).decode() + ":"},
            422,
            "digest_mismatch",
        ),
        (wav(), {"Content-Digest": "sha-256=:not base64!:"}, 400, "invalid_digest"),
        (
            wav(),
            {"x-amz-checksum-sha256": base64.b64encode(b"short").decode()},
            400,
            "invalid_digest",
        ),
        (b"just some text, renamed to .wav", {}, 415, None),
        (wav()[:200], {}, 422, None),
        (b"\x00" * 300_000, {}, 413, "payload_too_large"),
    ],
)
async def test_bad_uploads_keep_nothing(
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    track = await draft(client, artist)
    response = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=content,
        headers={"Content-Type": "audio/wav", **headers, **artist},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if code:
        assert response.json()["code"] == code
    assert objects(settings) == []
    assert list((settings.var_dir / "uploads").rglob(".upload-*")) == []  # no temporary file left
    after = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert after["audio"] is None


async def test_submission_needs_a_complete_track_and_then_locks_it(
    client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    track = await draft(client, artist)
    early = await client.post(f"/api/tracks/{track['id']}/submit", headers=artist)
    assert early.status_code == 422
    body = early.json()
    assert body["code"] == "track_incomplete"
    assert set(body["missing"]) == {
        "primary_artist",
        "genre",
        "explicit",
        "language",
        "release_date",
        "isrc",
        "credits",
        "audio",
        "artwork",
    }
    patched = await client.patch(f"/api/tracks/{track['id']}", json=COMPLETE, headers=artist)
    assert patched.json()["isrc"] == "USRC17607839"
    await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    await upload_cover(client, artist, track["id"])
    submitted = await client.post(f"/api/tracks/{track['id']}/submit", headers=artist)
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "submitted"
    locked = await client.patch(f"/api/tracks/{track['id']}", json={"title": "New"}, headers=artist)
    assert locked.status_code == 409
    assert locked.json()["code"] == "track_locked"


async def test_deleting_a_draft_deletes_its_object(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert len(objects(settings)) == 1
    assert (await client.delete(f"/api/tracks/{track['id']}", headers=artist)).status_code == 204
    assert objects(settings) == []
    assert (await client.get(f"/api/tracks/{track['id']}", headers=artist)).status_code == 404


async def test_listing_pages_by_cursor(client: httpx.AsyncClient, artist: dict[str, str]) -> None:
    for i in range(5):
        await draft(client, artist, primary_artist=f"A{i}")
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/tracks", params=params, headers=artist)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    "splits", [[100], [33.33, 33.33, 33.34], [12.5, 87.5], [0, 99.99, 0.01], ["60", "40"]]
)
async def test_splits_are_numbers_out_whatever_way_in(
    client: httpx.AsyncClient, artist: dict[str, str], splits: list[Any]
) -> None:
    credits = [{"name": f"N{i}", "role": "writer", "split": s} for i, s in enumerate(splits)]
    created = await draft(client, artist, credits=credits)
    numbers = [float(s) for s in splits]
    listed = (await client.get("/api/tracks", headers=artist)).json()["items"][0]
    read = (await client.get(f"/api/tracks/{created['id']}", headers=artist)).json()
    for body in (created, listed, read):
        out = [credit["split"] for credit in body["credits"]]
        assert all(isinstance(split, int | float) for split in out), out
        assert out == numbers
    changed = await client.patch(
        f"/api/tracks/{created['id']}",
        json={"credits": [{"name": "Solo", "role": "writer", "split": 100}]},
        headers=artist,
    )
    assert changed.json()["credits"] == [{"name": "Solo", "role": "writer", "split": 100}]
    assert '"split":100}' in changed.text


async def test_a_listed_track_reads_exactly_as_the_track_itself(
    client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    """Pages are serialized from plain data, single tracks through the model: the same JSON."""
    full = await draft(client, artist, featured_artists=["Guest"], **COMPLETE)
    await client.put(
        f"/api/tracks/{full['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    await upload_cover(client, artist, full["id"])
    bare = await draft(client, artist, title="Bare")
    listed = await client.get("/api/tracks", headers=artist)
    assert listed.headers["content-type"] == "application/json"
    items = {item["id"]: item for item in listed.json()["items"]}
    for track_id in (full["id"], bare["id"]):
        alone = await client.get(f"/api/tracks/{track_id}", headers=artist)
        assert items[track_id] == alone.json()
    assert items[full["id"]]["audio"]["format"] == "wav"
    assert items[full["id"]]["upload"] == {"state": "ready", "error": None}


async def test_upload_and_signed_link_on_s3(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    s3_server: S3Server,
    make_user: Any,
) -> None:
    from asgi_lifespan import LifespanManager

    settings = make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        storage_backend="s3",
        s3_bucket=s3_server.bucket,
        s3_endpoint_url=s3_server.endpoint,
        s3_region="us-east-1",
    )
    await make_user("s3artist@example.com", role=Role.ARTIST, display_name="S3")
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        auth = bearer(await login(client, "s3artist@example.com"))
        track = await draft(client, auth)
        data = wav()
        uploaded = await client.put(
            f"/api/tracks/{track['id']}/audio",
            content=data,
            headers={"Content-Type": "audio/wav", **digest_header(data), **auth},
        )
        assert uploaded.status_code == 200, uploaded.text
        link = (await client.get(f"/api/tracks/{track['id']}/audio-url", headers=auth)).json()
    assert link["url"].startswith(s3_server.endpoint)
    async with httpx.AsyncClient() as outside:
        fetched = await outside.get(link["url"])
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == uploaded.json()["audio"]["sha256"]


async def test_deleting_the_account_takes_drafts_and_their_objects_and_keeps_submissions(
    app: Any, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    from backline.tracks.models import Track
    from tests.conftest import DEFAULT_PASSWORD

    kept = await draft(client, artist, title="Submitted", **COMPLETE)
    await client.put(
        f"/api/tracks/{kept['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    await upload_cover(client, artist, kept["id"])
    assert (await client.post(f"/api/tracks/{kept['id']}/submit", headers=artist)).is_success
    gone = await draft(client, artist, title="Draft")
    await client.put(
        f"/api/tracks/{gone['id']}/audio",
        content=wav(0.5),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert len(objects(settings)) == 3
    exported = (await client.get("/api/me/export", headers=artist)).json()
    assert sorted(t["title"] for t in exported["tracks"]) == ["Draft", "Submitted"]

    deleted = await client.request(
        "DELETE", "/api/me", json={"password": DEFAULT_PASSWORD}, headers=artist
    )
    assert deleted.status_code == 204, deleted.text
    # The listing reads no account row: the gone account's token fails on its revoked session.
    after = await client.get("/api/tracks", headers=artist)
    assert after.status_code == 401
    assert after.json()["code"] == "session_revoked"
    async with app.state.sessionmaker() as session:
        remaining = (await session.scalars(select(Track))).all()
    assert [(t.title, t.owner_id) for t in remaining] == [("Submitted", None)]
    kept_keys = {remaining[0].audio_key, remaining[0].artwork_key}
    assert {
        str(p.relative_to(settings.effective_storage_dir)) for p in objects(settings)
    } == kept_keys
