"""Shared by the track tests: settings, an artist, drafts, and audio made on the spot."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import struct
import wave
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from backline.accounts.models import Role
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login

COMPLETE = {
    "primary_artist": "The Band",
    "genre": "Rock",
    "explicit": False,
    "language": "en",
    "release_date": "2027-01-15",
    "isrc": "US-RC1-76-07839",
    "credits": [
        {"name": "A", "role": "writer", "split": 60},
        {"name": "B", "role": "producer", "split": 40},
    ],
}


def wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = int(seconds * rate)
        out.writeframes(
            b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(frames))
        )
    return buffer.getvalue()


@functools.cache
def cover(side: int = 1400) -> bytes:
    """Square artwork, the smallest accepted."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 90)).save(buffer, "PNG")
    return buffer.getvalue()


async def upload_cover(client: httpx.AsyncClient, artist: dict[str, str], track_id: str) -> None:
    response = await client.put(
        f"/api/tracks/{track_id}/artwork",
        content=cover(),
        headers={"Content-Type": "image/png", **artist},
    )
    assert response.status_code == 200, response.text


def digest_header(data: bytes) -> dict[str, str]:
    return {
        "Content-Digest": f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    }


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url, rate_limits=GENEROUS_LIMITS, max_audio_bytes=200_000
    )


@pytest.fixture
async def artist(client: httpx.AsyncClient, make_user: Any) -> dict[str, str]:
    await make_user("artist@example.com", role=Role.ARTIST, display_name="Artist")
    return bearer(await login(client, "artist@example.com"))


async def draft(client: httpx.AsyncClient, artist: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/tracks", json={"title": "Song", **fields}, headers=artist)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
