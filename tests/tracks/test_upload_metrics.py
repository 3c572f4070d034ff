"""Uploads in the metrics: by kind, way in and outcome, and the bytes of those stored."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from backline.app import Backline
from backline.tracks.verifier import Verifier
from tests.scrape import sample
from tests.tracks.conftest import cover, draft, wav


class Moved:
    """How far the upload series moved since it was made."""

    def __init__(self, kind: str, via: str) -> None:
        self.kind, self.via = kind, via
        self.start = {outcome: self.count(outcome) for outcome in OUTCOMES}
        self.start_bytes = self.bytes()

    def count(self, outcome: str) -> float:
        return sample("backline_uploads_total", kind=self.kind, via=self.via, outcome=outcome)

    def bytes(self) -> float:
        return sample("backline_upload_bytes_total", kind=self.kind, via=self.via)

    def outcomes(self) -> dict[str, float]:
        moved = {outcome: self.count(outcome) - self.start[outcome] for outcome in OUTCOMES}
        return {outcome: delta for outcome, delta in moved.items() if delta}

    def stored_bytes(self) -> float:
        return self.bytes() - self.start_bytes


OUTCOMES = ("stored", "rejected", "aborted", "failed")


async def test_streamed_audio_and_artwork_are_counted_with_their_bytes(
    client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    track = await draft(client, artist)
    audio, artwork = Moved("audio", "stream"), Moved("artwork", "stream")
    data = wav()
    response = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert response.status_code == 200, response.text
    art = await client.put(
        f"/api/tracks/{track['id']}/artwork",
        content=cover(),
        headers={"Content-Type": "image/png", **artist},
    )
    assert art.status_code == 200, art.text
    assert audio.outcomes() == {"stored": 1}
    assert audio.stored_bytes() == len(data)
    assert artwork.outcomes() == {"stored": 1}
    assert artwork.stored_bytes() == len(cover())


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"just some text, not audio", 415), (b"x" * 300_000, 413)],
    ids=["not-audio", "too-large"],
)
async def test_refused_uploads_are_counted_as_rejected_with_no_bytes(
    client: httpx.AsyncClient, artist: dict[str, str], content: bytes, status: int
) -> None:
    track = await draft(client, artist)
    audio = Moved("audio", "stream")
    response = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=content,
        headers={"Content-Type": "audio/wav", **artist},
    )
    assert response.status_code == status
    assert audio.outcomes() == {"rejected": 1}
    assert audio.stored_bytes() == 0


async def test_a_form_upload_is_counted_as_such(
    client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    track = await draft(client, artist)
    form, stream = Moved("audio", "form"), Moved("audio", "stream")
    data = wav()
    response = await client.post(
        f"/api/tracks/{track['id']}/audio",
        files={"file": ("song.wav", data, "audio/wav")},
        headers=artist,
    )
    assert response.status_code == 200, response.text
    assert form.outcomes() == {"stored": 1}
    assert form.stored_bytes() == len(data)
    assert stream.outcomes() == {}


async def direct(client: httpx.AsyncClient, artist: dict[str, str], data: bytes) -> None:
    """Ask for a local upload URL, send the bytes there, and complete."""
    track = await draft(client, artist)
    body = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    grant: dict[str, Any] = (
        await client.post(f"/api/tracks/{track['id']}/upload-url", json=body, headers=artist)
    ).json()
    url = urlsplit(grant["url"])
    sent = await client.put(f"{url.path}?{url.query}", content=data, headers=grant["headers"])
    assert sent.status_code == 200, sent.text
    done = await client.post(f"/api/tracks/{track['id']}/audio/complete", headers=artist)
    assert done.status_code == 202, done.text


async def test_direct_uploads_are_counted_once_verified(
    app: Backline, client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    moved = Moved("audio", "direct")
    data = wav()
    await direct(client, artist, data)
    await direct(client, artist, b"%PDF-1.7\n" + b"x" * 2000)
    assert moved.outcomes() == {}  # nothing counts before the verifier has read the bytes
    verifier = Verifier(app.state.settings, app.state.sessionmaker, app.state.storages)
    assert await verifier.drain() == 2
    assert moved.outcomes() == {"stored": 1, "rejected": 1}
    assert moved.stored_bytes() == len(data)
