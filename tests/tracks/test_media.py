"""Signed media links on the local backend serve byte ranges, so that a browser's player can
seek: 206 with Content-Range, 416 for a range outside the file, the SHA-256 as ETag with 304
and If-Range, and HEAD; first against a real server, then the edge cases in process."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.served import SERVERS, create_user, served
from tests.tracks.conftest import digest_header, draft, wav


async def audio_link(client: httpx.AsyncClient, artist: dict[str, str], data: bytes) -> str:
    """Upload `data` as a new draft's audio; answer its signed link's path and query."""
    track = await draft(client, artist)
    uploaded = await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **digest_header(data), **artist},
    )
    assert uploaded.status_code == 200, uploaded.text
    link = await client.get(f"/api/tracks/{track['id']}/audio-url", headers=artist)
    url = urlsplit(link.json()["url"])
    return f"{url.path}?{url.query}"


def served_audio_link(client: httpx.Client, artist: dict[str, str], data: bytes) -> str:
    track = client.post("/api/tracks", json={"title": "Song"}, headers=artist).json()
    uploaded = client.put(
        f"/api/tracks/{track['id']}/audio",
        content=data,
        headers={"Content-Type": "audio/wav", **digest_header(data), **artist},
    )
    assert uploaded.status_code == 200, uploaded.text
    url = urlsplit(client.get(f"/api/tracks/{track['id']}/audio-url", headers=artist).json()["url"])
    return f"{url.path}?{url.query}"


@pytest.mark.slow
@pytest.mark.parametrize("server_name", SERVERS)
def test_a_player_seeks_through_a_signed_link_on_a_real_server(
    tmp_path: Path, server_name: str
) -> None:
    data = wav(1.0)
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    with served(tmp_path, server=server_name, BACKLINE_ENV="test") as server:
        artist = create_user(server, "artist@example.com", role="artist")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            link = served_audio_link(client, artist, data)

            whole = client.get(link)
            assert whole.status_code == 200
            assert whole.content == data
            assert whole.headers["accept-ranges"] == "bytes"
            assert whole.headers["etag"] == etag

            first = client.get(link, headers={"Range": "bytes=0-99"})
            assert first.status_code == 206
            assert first.headers["content-range"] == f"bytes 0-99/{len(data)}"
            assert first.headers["content-length"] == "100"
            assert first.headers["content-type"] == "audio/wav"
            assert first.content == data[:100]

            tail = client.get(link, headers={"Range": "bytes=-100"})
            assert (tail.status_code, tail.content) == (206, data[-100:])
            rest = client.get(link, headers={"Range": f"bytes={len(data) - 10}-"})
            assert (rest.status_code, rest.content) == (206, data[-10:])

            outside = client.get(link, headers={"Range": f"bytes={len(data)}-"})
            assert outside.status_code == 416
            assert outside.headers["content-range"] == f"bytes */{len(data)}"
            assert outside.headers["content-type"] == "application/problem+json"
            assert outside.json()["code"] == "range_not_satisfiable"

            head = client.head(link, headers={"Range": "bytes=100-199"})
            assert head.status_code == 206
            assert head.headers["content-range"] == f"bytes 100-199/{len(data)}"
            assert head.headers["content-length"] == "100"
            assert head.content == b""

            cached = client.get(link, headers={"If-None-Match": etag})
            assert cached.status_code == 304
            assert cached.content == b""

            # The connection kept through all of these is still good.
            assert client.get(link, headers={"Range": "bytes=0-0"}).content == data[:1]
        assert "Traceback" not in server.output


@pytest.mark.parametrize(
    ("headers", "status", "part"),
    [
        ({"Range": "bytes=0-1,5-6"}, 200, slice(None)),
        ({"Range": "bytes=9-2"}, 200, slice(None)),
        ({"Range": "bytes=abc"}, 200, slice(None)),
        ({"Range": "items=0-9"}, 200, slice(None)),
        ({"Range": "bytes=10-19"}, 206, slice(10, 20)),
        ({"Range": "bytes=0-99999999"}, 206, slice(None)),
        ({"Range": "bytes=10-19", "If-Range": "ETAG"}, 206, slice(10, 20)),
        ({"Range": "bytes=10-19", "If-Range": '"an-older-version"'}, 200, slice(None)),
        ({"Range": "bytes=10-19", "If-Range": "W/ETAG"}, 200, slice(None)),
        ({"Range": "bytes=10-19", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}, 200, slice(None)),
        ({"If-None-Match": "ETAG"}, 304, slice(0)),
        ({"If-None-Match": 'W/ETAG, "x"'}, 304, slice(0)),
        ({"If-None-Match": "*"}, 304, slice(0)),
        ({"If-None-Match": '"an-older-version"'}, 200, slice(None)),
        ({"If-None-Match": "ETAG", "Range": "bytes=0-1"}, 304, slice(0)),
        ({"Range": "bytes=-0"}, 416, None),
    ],
)
async def test_ranges_and_validators(
    client: httpx.AsyncClient,
    artist: dict[str, str],
    headers: dict[str, str],
    status: int,
    part: slice | None,
) -> None:
    data = wav()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    link = await audio_link(client, artist, data)
    sent = {name: value.replace("ETAG", etag) for name, value in headers.items()}
    response = await client.get(link, headers=sent)
    assert response.status_code == status, response.text
    assert response.headers["etag"] == etag
    if part is None:
        assert response.headers["content-range"] == f"bytes */{len(data)}"
        return
    assert response.content == data[part]
    if status == 206:
        first = part.start or 0
        last = first + len(data[part]) - 1
        assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"


async def test_the_etag_is_signed_with_the_link(
    client: httpx.AsyncClient, artist: dict[str, str]
) -> None:
    link = await audio_link(client, artist, wav())
    digest = link.split("sha256=")[1][:64]
    forged = link.replace(digest, f"{int(digest, 16) ^ 1:064x}")
    refused = await client.get(forged)
    assert refused.status_code == 404
    assert refused.json()["code"] == "invalid_link"


async def test_head_reads_headers_only(client: httpx.AsyncClient, artist: dict[str, Any]) -> None:
    data = wav()
    link = await audio_link(client, artist, data)
    head = await client.head(link)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["accept-ranges"] == "bytes"
    assert head.content == b""
