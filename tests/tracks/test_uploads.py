"""Uploads: direct-to-storage (local and S3), browser forms, one upload at a time per track."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import update

from backline.accounts.models import Role
from backline.app import Backline
from backline.config import Settings
from backline.db import utcnow
from backline.tracks.models import Track
from backline.tracks.verifier import Verifier
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login
from tests.conftest import BUCKET
from tests.s3servers import S3Server
from tests.tracks.conftest import draft, wav


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def stored_files(settings: Settings) -> list[str]:
    root = settings.effective_storage_dir
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def verifier(app: Backline) -> Verifier:
    return Verifier(app.state.settings, app.state.sessionmaker, app.state.storages)


async def ask(
    client: httpx.AsyncClient, artist: dict[str, str], track_id: str, data: bytes, **extra: Any
) -> httpx.Response:
    body = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}
    return await client.post(f"/api/tracks/{track_id}/upload-url", json=body, headers=artist)


async def send(client: httpx.AsyncClient, grant: dict[str, Any], data: bytes) -> httpx.Response:
    """PUT the bytes where the grant says, with exactly the headers it lists."""
    url = grant["url"]
    if "X-Amz-Signature" not in url:  # the local backend's app URL
        split = urlsplit(url)
        return await client.put(
            f"{split.path}?{split.query}", content=data, headers=grant["headers"]
        )
    async with httpx.AsyncClient() as outside:
        return await outside.put(url, content=data, headers=grant["headers"])


async def completed(
    client: httpx.AsyncClient, artist: dict[str, str], track_id: str, data: bytes
) -> dict[str, Any]:
    """The whole client side of a direct upload: ask for a URL, send, complete. The grant."""
    grant: dict[str, Any] = (await ask(client, artist, track_id, data)).json()
    assert (await send(client, grant, data)).status_code == 200
    done = await client.post(f"/api/tracks/{track_id}/audio/complete", headers=artist)
    assert done.status_code == 202, done.text
    return grant


async def test_direct_upload_on_the_local_backend(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    granted = await ask(client, artist, track["id"], data, content_type="audio/wav")
    assert granted.status_code == 200, granted.text
    grant = granted.json()
    assert grant["method"] == "PUT"
    assert grant["headers"] == {"Content-Type": "audio/wav", "x-amz-checksum-sha256": b64(data)}
    assert grant["url"].startswith(f"{settings.public_url}/media/upload/")
    pending = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert pending["upload"] == {"state": "awaiting_upload", "error": None}

    early = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert early.status_code == 409
    assert early.json()["code"] == "upload_missing"

    sent = await send(client, grant, data)
    assert sent.status_code == 200, sent.text
    completed = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert completed.status_code == 202, completed.text
    assert completed.json()["upload"]["state"] == "verifying"
    assert completed.json()["audio"] is None  # not yet: it must be checked first
    again = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert again.status_code == 409
    assert again.json()["code"] == "upload_not_pending"

    assert await verifier(app).run_once() == 1
    ready = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert ready["upload"] == {"state": "ready", "error": None}
    assert ready["audio"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert ready["audio"]["format"] == "wav"
    # The unverified upload object is gone; only the checked copy remains.
    files = stored_files(settings)
    assert len(files) == 1
    assert files[0].startswith("audio/")
    link = (await client.get(f"/api/tracks/{track['id']}/audio-url", headers=artist)).json()
    fetched = await client.get(link["url"].removeprefix(settings.public_url))
    assert fetched.content == data
    assert fetched.headers["content-type"] == "audio/wav"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda url, headers: (url.replace("size=", "size=9"), headers), 404),
        (lambda url, headers: (url.replace("upload/", "audio/"), headers), 404),
        (lambda url, headers: (url, {**headers, "Content-Type": "audio/flac"}), 404),
        (lambda url, headers: (url, {**headers, "x-amz-checksum-sha256": b64(b"x")}), 404),
        (lambda url, headers: (url.replace("expires=", "expires=1"), headers), 404),
    ],
    ids=["size", "key", "type", "checksum", "expiry"],
)
async def test_a_local_upload_url_cannot_be_altered(
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    change: Callable[[str, dict[str, str]], tuple[str, dict[str, str]]],
    expected: int,
) -> None:
    track = await draft(client, artist)
    data = wav()
    grant = (await ask(client, artist, track["id"], data)).json()
    url, headers = change(grant["url"], grant["headers"])
    sent = await send(client, {"url": url, "headers": headers}, data)
    assert sent.status_code == expected
    assert sent.json()["code"] == "invalid_link"
    assert stored_files(settings) == []


async def test_a_local_upload_url_takes_only_the_signed_bytes(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    grant = (await ask(client, artist, track["id"], data)).json()
    longer = await send(client, grant, data + b"\x00")
    assert longer.status_code == 413
    shorter = await send(client, grant, data[:-1])
    assert shorter.status_code == 422
    assert shorter.json()["code"] == "digest_mismatch"
    other = bytearray(data)
    other[-1] ^= 1
    swapped = await send(client, grant, bytes(other))
    assert swapped.status_code == 422
    assert swapped.json()["code"] == "digest_mismatch"
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"size": 0, "sha256": "00" * 32}, "validation_failed"),
        ({"size": 10, "sha256": "zz" * 32}, "validation_failed"),
        ({"size": 10, "sha256": "abc"}, "validation_failed"),
        ({"size": 10, "sha256": "00" * 32, "content_type": "text/html"}, "validation_failed"),
        ({"size": 10**12, "sha256": "00" * 32}, "payload_too_large"),
    ],
)
async def test_upload_url_requests_are_checked(
    client: httpx.AsyncClient, artist: dict[str, str], body: dict[str, Any], code: str
) -> None:
    track = await draft(client, artist)
    response = await client.post(f"/api/tracks/{track['id']}/upload-url", json=body, headers=artist)
    assert response.status_code in (413, 422)
    assert response.json()["code"] == code
    after = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert after["upload"] is None


async def test_a_base64_digest_is_taken_as_well(
    client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    track = await draft(client, artist)
    data = wav()
    response = await client.post(
        f"/api/tracks/{track['id']}/upload-url",
        json={"size": len(data), "sha256": b64(data)},
        headers=artist,
    )
    assert response.status_code == 200, response.text
    assert response.json()["headers"]["x-amz-checksum-sha256"] == b64(data)


async def test_what_is_not_audio_fails_verification_and_is_removed(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = b"%PDF-1.7\n" + b"x" * 2000
    grant = (await ask(client, artist, track["id"], data)).json()
    assert (await send(client, grant, data)).status_code == 200
    completed = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert completed.status_code == 202
    await verifier(app).run_once()
    failed = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert failed["upload"] == {"state": "failed", "error": "not_audio"}
    assert failed["audio"] is None
    assert stored_files(settings) == []


async def test_a_lapsed_upload_is_swept_with_its_object(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    grant = (await ask(client, artist, track["id"], data)).json()
    assert (await send(client, grant, data)).status_code == 200
    assert len(stored_files(settings)) == 1
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(update(Track).values(upload_expires_at=utcnow() - timedelta(hours=1)))
    late = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert late.status_code == 409
    assert late.json()["code"] == "upload_expired"
    assert await verifier(app).run_once() == 0
    swept = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert swept["upload"] == {"state": "failed", "error": "upload_expired"}
    assert stored_files(settings) == []


async def test_a_new_upload_url_voids_the_last_and_its_object(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    first = (await ask(client, artist, track["id"], data)).json()
    assert (await send(client, first, data)).status_code == 200
    second = (await ask(client, artist, track["id"], data)).json()
    assert second["url"] != first["url"]
    assert stored_files(settings) == []


async def test_deleting_a_track_removes_a_pending_upload(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    grant = (await ask(client, artist, track["id"], data)).json()
    assert (await send(client, grant, data)).status_code == 200
    deleted = await client.delete(f"/api/tracks/{track['id']}", headers=artist)
    assert deleted.status_code == 204
    assert stored_files(settings) == []


async def test_submitting_waits_for_a_pending_upload(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    from tests.tracks.conftest import COMPLETE, upload_cover

    track = await draft(client, artist, **COMPLETE)
    await upload_cover(client, artist, track["id"])
    data = wav()
    await completed(client, artist, track["id"], data)
    early = await client.post(f"/api/tracks/{track['id']}/submit", headers=artist)
    assert early.status_code == 409
    assert early.json()["code"] == "upload_in_progress"
    await verifier(app).run_once()
    submitted = await client.post(f"/api/tracks/{track['id']}/submit", headers=artist)
    assert submitted.status_code == 200, submitted.text


async def test_other_peoples_tracks_get_no_upload_url(
    client: httpx.AsyncClient, artist: dict[str, str], make_user: Any
) -> None:
    track = await draft(client, artist)
    await make_user("other@example.com", role=Role.ARTIST, display_name="Other")
    other = bearer(await login(client, "other@example.com"))
    data = wav()
    for path in ("upload-url", "audio/complete"):
        response = await client.post(
            f"/api/tracks/{track['id']}/{path}",
            json={"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
            headers=other,
        )
        assert response.status_code == 404, path


# -- S3 ------------------------------------------------------------------------------------


@pytest.fixture
async def s3_app(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    s3_server: S3Server,
) -> AsyncIterator[Backline]:
    """Backline storing on S3: on moto, then on radosgw."""
    settings = make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        storage_backend="s3",
        s3_bucket=s3_server.bucket,
        s3_endpoint_url=s3_server.endpoint,
        s3_region="us-east-1",
        max_audio_bytes=200_000,
    )
    app = app_factory(settings)
    async with LifespanManager(app):
        yield app


@pytest.fixture
async def s3_client(s3_app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=s3_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def s3_artist(s3_client: httpx.AsyncClient, make_user: Any) -> dict[str, str]:
    await make_user("s3artist@example.com", role=Role.ARTIST, display_name="S3")
    return bearer(await login(s3_client, "s3artist@example.com"))


async def test_direct_upload_to_s3_with_a_presigned_put(
    s3_app: Backline, s3_client: httpx.AsyncClient, s3_artist: dict[str, str], s3_server: S3Server
) -> None:
    track = await draft(s3_client, s3_artist)
    data = wav()
    grant = (await ask(s3_client, s3_artist, track["id"], data, content_type="audio/x-wav")).json()
    assert grant["url"].startswith(s3_server.endpoint)
    assert "x-amz-checksum-sha256" in grant["url"].lower()  # among the signed headers
    sent = await send(s3_client, grant, data)
    assert sent.status_code == 200, sent.text
    completed = await s3_client.post(f"/api/tracks/{track['id']}/audio/complete", headers=s3_artist)
    assert completed.status_code == 202, completed.text
    assert await verifier(s3_app).run_once() == 1
    ready = (await s3_client.get(f"/api/tracks/{track['id']}", headers=s3_artist)).json()
    assert ready["upload"]["state"] == "ready"
    assert ready["audio"]["sha256"] == hashlib.sha256(data).hexdigest()
    keys = s3_server.keys()
    assert len(keys) == 1
    assert keys[0].startswith("audio/")
    link = (await s3_client.get(f"/api/tracks/{track['id']}/audio-url", headers=s3_artist)).json()
    async with httpx.AsyncClient() as outside:
        fetched = await outside.get(link["url"])
    assert fetched.content == data
    assert fetched.headers["content-type"] == "audio/wav"  # what it is, not what was declared


async def test_s3_bytes_that_differ_from_the_declared_digest_fail(
    s3_app: Backline, s3_client: httpx.AsyncClient, s3_artist: dict[str, str], s3_server: S3Server
) -> None:
    """Bytes that differ from the signed digest never count, whoever notices first.

    An S3 that enforces the signed checksum refuses the PUT itself (nothing is stored, and
    completing finds nothing); one that does not (moto, and Ceph 16's radosgw: both store the
    flipped byte) takes the body, and Backline's own re-hash fails the upload and deletes the
    object. Either way the track gains no audio.
    """
    track = await draft(s3_client, s3_artist)
    data = wav()
    grant = (await ask(s3_client, s3_artist, track["id"], data)).json()
    other = bytearray(data)
    other[-1] ^= 1
    sent = await send(s3_client, grant, bytes(other))
    if s3_server.kind == "radosgw":  # the re-hash is the only check there: it must catch this
        assert sent.is_success, sent.text
    completed = await s3_client.post(f"/api/tracks/{track['id']}/audio/complete", headers=s3_artist)
    if sent.is_success:
        assert completed.status_code == 202, completed.text
        await verifier(s3_app).run_once()
        failed = (await s3_client.get(f"/api/tracks/{track['id']}", headers=s3_artist)).json()
        assert failed["upload"] == {"state": "failed", "error": "digest_mismatch"}
    else:  # the store refused the body: nothing there to complete
        assert sent.status_code in (400, 403), sent.text
        assert completed.status_code == 409
        assert completed.json()["code"] == "upload_missing"
        failed = (await s3_client.get(f"/api/tracks/{track['id']}", headers=s3_artist)).json()
        assert failed["upload"]["state"] == "awaiting_upload"
    assert failed["audio"] is None
    assert s3_server.keys() == []


async def test_a_verification_waits_out_a_storage_outage(
    s3_app: Backline, s3_client: httpx.AsyncClient, s3_artist: dict[str, str]
) -> None:
    from backline.storage import Storages
    from backline.storage.s3 import S3Storage
    from tests.conftest import free_port

    track = await draft(s3_client, s3_artist)
    data = wav()
    await completed(s3_client, s3_artist, track["id"], data)
    down = S3Storage(
        bucket=BUCKET, endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1", timeout=1
    )
    broken = Verifier(s3_app.state.settings, s3_app.state.sessionmaker, Storages(down))
    await broken.run_once()
    waiting = (await s3_client.get(f"/api/tracks/{track['id']}", headers=s3_artist)).json()
    assert waiting["upload"]["state"] == "verifying"  # not failed: tried again later
    async with s3_app.state.sessionmaker() as session, session.begin():
        await session.execute(update(Track).values(upload_expires_at=utcnow()))  # lease over
    assert await verifier(s3_app).run_once() == 1
    ready = (await s3_client.get(f"/api/tracks/{track['id']}", headers=s3_artist)).json()
    assert ready["upload"]["state"] == "ready"


# -- browser forms -------------------------------------------------------------------------


async def test_a_browser_form_streams_in(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    response = await client.post(
        f"/api/tracks/{track['id']}/audio",
        data={"sha256": hashlib.sha256(data).hexdigest()},
        files={"file": ("my song.wav", data, "audio/wav")},
        headers=artist,
    )
    assert response.status_code == 200, response.text
    assert response.json()["audio"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["upload"] == {"state": "ready", "error": None}
    files = stored_files(settings)
    assert len(files) == 1
    assert "my song" not in files[0]  # keys are the server's, never the file name
    assert not list((settings.var_dir / "uploads").rglob(".upload-*"))


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        (
            {"data": {"sha256": "00" * 32}, "files": {"file": ("a.wav", wav())}},
            422,
            "digest_mismatch",
        ),
        ({"data": {"sha256": "nope"}, "files": {"file": ("a.wav", wav())}}, 400, "invalid_digest"),
        ({"data": {"title": "x"}, "files": {"other": ("a.wav", wav())}}, 400, "invalid_form"),
        (
            {"files": [("file", ("a.wav", wav())), ("file", ("b.wav", wav()))]},
            400,
            "invalid_form",
        ),
        ({"data": {"sha256": "00" * 32}}, 415, "unsupported_media_type"),
        ({"files": {"file": ("a.txt", b"just some text, not audio")}}, 415, "not_audio"),
        ({"files": {"file": ("a.wav", b"x" * 300_000)}}, 413, "payload_too_large"),
        (
            {"data": {"sha256": "a" * 5000}, "files": {"file": ("a.wav", wav())}},
            400,
            "invalid_form",
        ),
    ],
    ids=["mismatch", "bad-digest", "no-file", "two-files", "not-a-form", "text", "big", "field"],
)
async def test_bad_forms_keep_nothing(
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    form: dict[str, Any],
    status: int,
    code: str,
) -> None:
    track = await draft(client, artist)
    response = await client.post(f"/api/tracks/{track['id']}/audio", headers=artist, **form)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert stored_files(settings) == []
    assert not list((settings.var_dir / "uploads").rglob(".upload-*"))
    after = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert after["audio"] is None
    assert after["upload"] is None  # as it was


async def test_a_malformed_form_is_a_400(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    response = await client.post(
        f"/api/tracks/{track['id']}/audio",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxx',
        headers={"Content-Type": "multipart/form-data; boundary=b", **artist},
    )
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_form", "missing_file")
    assert not list((settings.var_dir / "uploads").rglob(".upload-*"))


# -- one upload at a time ------------------------------------------------------------------


async def test_two_concurrent_uploads_to_one_track_one_wins_cleanly(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    first_data, second_data = wav(0.25), wav(0.5)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield first_data[:1000]
        started.set()
        await release.wait()
        yield first_data[1000:]

    first = asyncio.create_task(
        client.put(
            f"/api/tracks/{track['id']}/audio",
            content=slow_body(),
            headers={"Content-Type": "audio/wav", **artist},
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    second = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=second_data,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert second.status_code == 409
    assert second.json()["code"] == "upload_in_progress"
    form = await client.post(
        f"/api/tracks/{track['id']}/audio",
        files={"file": ("b.wav", second_data)},
        headers=artist,
    )
    assert form.status_code == 409
    direct = await ask(client, artist, track["id"], second_data)
    assert direct.status_code == 409
    release.set()
    won = await asyncio.wait_for(first, 10)
    assert won.status_code == 200, won.text
    assert won.json()["audio"]["sha256"] == hashlib.sha256(first_data).hexdigest()
    assert len(stored_files(settings)) == 1
    after = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=second_data,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert after.status_code == 200  # the track is free again
    assert len(stored_files(settings)) == 1  # the replaced object went


async def test_a_failed_upload_leaves_the_track_as_it_was(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    ok = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert ok.status_code == 200
    before = ok.json()
    bad = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=b"plain text " * 100,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert bad.status_code == 415
    after = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert after == before
    assert len(stored_files(settings)) == 1


async def test_a_claim_whose_server_died_lapses(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    import uuid

    track = await draft(client, artist)
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Track).values(
                upload_state="receiving",
                upload_token=uuid.uuid4(),
                upload_expires_at=utcnow() + timedelta(minutes=5),
            )
        )
    busy = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert busy.status_code == 409
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(update(Track).values(upload_expires_at=utcnow()))
    await verifier(app).run_once()
    lapsed = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert lapsed["upload"] == {"state": "failed", "error": "upload_interrupted"}
    free = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert free.status_code == 200


async def test_approved_artwork_on_s3_is_a_public_redirect(
    s3_app: Backline, s3_client: httpx.AsyncClient, s3_artist: dict[str, str], make_user: Any
) -> None:
    from tests.tracks.conftest import COMPLETE, cover, upload_cover

    track = await draft(s3_client, s3_artist, **COMPLETE)
    await s3_client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **s3_artist},
    )
    await upload_cover(s3_client, s3_artist, track["id"])
    assert (await s3_client.post(f"/api/tracks/{track['id']}/submit", headers=s3_artist)).is_success
    assert (await s3_client.get(f"/public/artwork/{track['id']}")).status_code == 404
    await make_user("s3staff@example.com", role=Role.STAFF, display_name="Staff")
    staff = bearer(await login(s3_client, "s3staff@example.com"))
    approved = await s3_client.post(f"/api/admin/tracks/{track['id']}/approve", headers=staff)
    assert approved.status_code == 200, approved.text
    public = await s3_client.get(f"/public/artwork/{track['id']}")
    assert public.status_code == 302
    async with httpx.AsyncClient() as outside:
        image = await outside.get(public.headers["location"])
    assert image.content == cover()
    assert image.headers["content-type"] == "image/png"


async def test_a_track_being_verified_takes_no_other_upload(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    track = await draft(client, artist)
    data = wav()
    await completed(client, artist, track["id"], data)
    for attempt in (
        client.put(
            f"/api/tracks/{track['id']}/audio",
            content=b"not audio at all",
            headers={"Content-Type": "audio/wav", **artist},
        ),
        ask(client, artist, track["id"], data),
    ):
        busy = await attempt
        assert busy.status_code == 409
        assert busy.json()["code"] == "upload_in_progress"
    assert await verifier(app).run_once() == 1
    ready = (await client.get(f"/api/tracks/{track['id']}", headers=artist)).json()
    assert ready["upload"]["state"] == "ready"


async def test_a_local_upload_url_is_good_only_while_its_upload_is_pending(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    data = wav()
    first = (await ask(client, artist, track["id"], data)).json()
    await ask(client, artist, track["id"], data)  # a newer URL voids the first
    replayed = await send(client, first, data)
    assert replayed.status_code == 404
    assert stored_files(settings) == []
    grant = await completed(client, artist, track["id"], data)
    await verifier(app).run_once()
    kept = stored_files(settings)
    again = await send(client, grant, data)  # the same link, after the upload was verified
    assert again.status_code == 404
    assert stored_files(settings) == kept


async def test_a_claim_is_renewed_while_a_slow_upload_runs(
    app: Backline,
    client: httpx.AsyncClient,
    artist: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backline.tracks import uploading

    monkeypatch.setattr(uploading, "RECEIVING_LEASE", timedelta(seconds=0.4))
    monkeypatch.setattr(uploading, "RENEW_EVERY", 0.1)
    track = await draft(client, artist)
    data = wav()

    async def slow_body() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 500):
            yield data[start : start + 500]
            await asyncio.sleep(0.1)  # 1.6 s in all: four leases

    upload = asyncio.create_task(
        client.put(
            f"/api/tracks/{track['id']}/audio",
            content=slow_body(),
            headers={"Content-Type": "audio/wav", **artist},
        )
    )
    for _ in range(6):  # the verifier sweeps lapsed claims all the while
        await asyncio.sleep(0.25)
        await verifier(app).sweep()
    done = await asyncio.wait_for(upload, 20)
    assert done.status_code == 200, done.text
    assert done.json()["upload"]["state"] == "ready"


async def test_awkward_forms_are_400s(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    long_boundary = "b" * 300
    head = 'Content-Disposition: form-data; name="file"; filename="a"'
    body = (
        f"--{long_boundary}\r\n{head}\r\n\r\n".encode()
        + wav()
        + f"\r\n--{long_boundary}--\r\n".encode()
    )
    refused = await client.post(
        f"/api/tracks/{track['id']}/audio",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={long_boundary}", **artist},
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_form"
    many = {f"field{i}": "x" * 1000 for i in range(100)}  # 100 KB of fields beside the file
    crowded = await client.post(
        f"/api/tracks/{track['id']}/audio",
        data=many,
        files={"file": ("a.wav", wav())},
        headers=artist,
    )
    assert crowded.status_code == 400
    assert crowded.json()["code"] == "invalid_form"
    assert not list((settings.var_dir / "uploads").rglob(".upload-*"))
    assert stored_files(settings) == []


async def test_an_s3_upload_object_gone_before_verification_fails_the_upload(
    s3_app: Backline, s3_client: httpx.AsyncClient, s3_artist: dict[str, str], s3_server: S3Server
) -> None:
    track = await draft(s3_client, s3_artist)
    data = wav()
    await completed(s3_client, s3_artist, track["id"], data)
    s3_server.empty()  # a lifecycle rule, say
    await verifier(s3_app).run_once()
    failed = (await s3_client.get(f"/api/tracks/{track['id']}", headers=s3_artist)).json()
    assert failed["upload"] == {"state": "failed", "error": "object_missing"}
    assert s3_server.keys() == []
