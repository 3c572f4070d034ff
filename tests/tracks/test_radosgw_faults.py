"""Faults on a real S3 server: radosgw killed in the middle of an upload, then started again.

Each test runs a gateway of its own on the run's Ceph cluster (`tests.s3servers`), so killing
it disturbs no other test; the cluster itself, and so every stored object, lives on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import update

from backline.app import Backline
from backline.config import Settings
from backline.db import utcnow
from backline.storage.base import StorageUnavailable
from backline.storage.keys import new_key
from backline.storage.s3 import PART_SIZE, S3Storage
from backline.tracks import uploading
from backline.tracks.models import Track
from backline.tracks.verifier import Verifier
from tests.accounts.conftest import GENEROUS_LIMITS
from tests.conftest import free_port
from tests.s3servers import CephCluster, S3Server
from tests.tracks.conftest import digest_header, draft, wav

pytestmark = [pytest.mark.radosgw, pytest.mark.slow]


@dataclass
class Gateway:
    """A radosgw of this test's own, and the bucket the test uses through it."""

    cluster: CephCluster
    name: str
    port: int
    s3: S3Server

    def kill(self) -> None:
        self.cluster.kill_gateway(self.name)

    def restart(self) -> None:
        self.cluster.start_gateway(self.name, self.port)


@pytest.fixture
def gateway(radosgw_s3: S3Server, ceph_cluster: CephCluster) -> Iterator[Gateway]:
    name, port = f"t{uuid.uuid4().hex[:8]}", free_port()
    endpoint = ceph_cluster.start_gateway(name, port)
    yield Gateway(ceph_cluster, name, port, dataclasses.replace(radosgw_s3, endpoint=endpoint))
    ceph_cluster.stop_gateway(name)


@pytest.fixture
async def app(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    gateway: Gateway,
) -> AsyncIterator[Backline]:
    settings = make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        storage_backend="s3",
        s3_bucket=gateway.s3.bucket,
        s3_endpoint_url=gateway.s3.endpoint,
        s3_region="us-east-1",
        max_audio_bytes=200_000,
        upload_timeout=10,
    )
    app = app_factory(settings)
    async with LifespanManager(app):
        yield app


async def track_state(client: httpx.AsyncClient, artist: dict[str, str], track_id: str) -> Any:
    return (await client.get(f"/api/tracks/{track_id}", headers=artist)).json()


async def test_a_gateway_killed_during_an_upload_keeps_nothing_and_the_next_one_works(
    client: httpx.AsyncClient, artist: dict[str, str], gateway: Gateway
) -> None:
    track = await draft(client, artist)
    before = await track_state(client, artist, track["id"])
    data = wav()

    async def body() -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        gateway.kill()  # while the client is still sending
        yield data[len(data) // 2 :]

    refused = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=body(),
        headers={"Content-Type": "audio/wav", "Content-Length": str(len(data)), **artist},
    )
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "storage_unavailable"
    after = await track_state(client, artist, track["id"])
    assert after["audio"] is None  # no row points at an object that is not there
    assert after["upload"] == before["upload"]  # nor is the track held by a dead upload

    gateway.restart()  # Backline itself is not restarted
    assert gateway.s3.keys() == []
    assert gateway.s3.unfinished_uploads() == []
    again = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **digest_header(data), **artist},
    )
    assert again.status_code == 200, again.text
    stored = gateway.s3.objects()
    assert list(stored.values()) == [data]
    assert again.json()["audio"]["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_direct_upload_cut_off_by_the_gateway_leaves_nothing_after_the_sweep(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str], gateway: Gateway
) -> None:
    """radosgw keeps no part of a PUT it did not receive whole; the lapsed upload is swept."""
    track = await draft(client, artist)
    data = wav()
    body = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    grant = (
        await client.post(f"/api/tracks/{track['id']}/upload-url", json=body, headers=artist)
    ).json()

    async def cut_off() -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        gateway.kill()
        yield data[len(data) // 2 :]

    async with httpx.AsyncClient() as outside:
        with pytest.raises(httpx.TransportError):
            await outside.put(grant["url"], content=cut_off(), headers=grant["headers"])
    gateway.restart()
    assert gateway.s3.keys() == []
    early = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert early.status_code == 409, early.text
    assert early.json()["code"] == "upload_missing"

    verifier = Verifier(app.state.settings, app.state.sessionmaker, app.state.storages)
    async with app.state.sessionmaker() as session, session.begin():
        lapsed = utcnow() - uploading.COMPLETE_GRACE - timedelta(minutes=1)
        await session.execute(update(Track).values(upload_expires_at=lapsed))
    await verifier.run_once()
    swept = await track_state(client, artist, track["id"])
    assert swept["upload"] == {"state": "failed", "error": "upload_expired"}
    assert swept["audio"] is None
    assert gateway.s3.keys() == []

    grant = (
        await client.post(f"/api/tracks/{track['id']}/upload-url", json=body, headers=artist)
    ).json()
    async with httpx.AsyncClient() as outside:
        sent = await outside.put(grant["url"], content=data, headers=grant["headers"])
    assert sent.status_code == 200, sent.text
    done = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert done.status_code == 202, done.text
    assert await verifier.run_once() == 1
    ready = await track_state(client, artist, track["id"])
    assert ready["upload"]["state"] == "ready"
    assert list(gateway.s3.objects().values()) == [data]


async def test_a_multipart_write_cut_off_between_parts_leaves_no_object(
    gateway: Gateway,
) -> None:
    """The parts already sent stay as an unfinished multipart upload, which the abort that
    failed with the gateway could not remove: no object appears, and a bucket lifecycle rule
    (AbortIncompleteMultipartUpload) is what reclaims the parts on any S3 store."""
    storage = S3Storage(
        bucket=gateway.s3.bucket, endpoint_url=gateway.s3.endpoint, region="us-east-1", timeout=10
    )
    key = new_key("audio")

    async def parts() -> AsyncIterator[bytes]:
        yield os.urandom(PART_SIZE + 1)  # the first part goes up before the next chunk is asked
        gateway.kill()
        yield os.urandom(PART_SIZE)

    with pytest.raises(StorageUnavailable):
        await storage.put(key, parts(), content_type="audio/wav", max_size=10**8)
    gateway.restart()
    assert await storage.size(key) is None
    assert gateway.s3.keys() == []
    assert gateway.s3.unfinished_uploads() == [key]
    stored = await storage.put(
        key, parts_of(b"after the restart"), content_type="audio/wav", max_size=100
    )
    assert stored.size == len(b"after the restart")


async def parts_of(data: bytes) -> AsyncIterator[bytes]:
    yield data
