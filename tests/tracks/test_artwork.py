"""Artwork: JPEG or PNG, square, 1400-6000 px, safe against decompression bombs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backline.config import Settings
from backline.tracks.artwork import InvalidArtwork, UnsupportedImage, inspect_image
from tests.tracks.conftest import draft


def image(size: tuple[int, int], kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, kind)
    return buffer.getvalue()


def bomb_png(side: int) -> bytes:
    """A tiny PNG whose header claims side x side pixels: a few KB that expand enormously."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # far fewer rows than claimed
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def saved(tmp_path: Path, data: bytes, name: str = "art") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("kind", "fmt"), [("PNG", "png"), ("JPEG", "jpeg")])
def test_square_jpeg_and_png_are_accepted(tmp_path: Path, kind: str, fmt: str) -> None:
    info = inspect_image(saved(tmp_path, image((1400, 1400), kind)))
    assert (info.format, info.width, info.height) == (fmt, 1400, 1400)


@pytest.mark.parametrize(
    ("data", "error", "wording"),
    [
        (image((1400, 1500)), InvalidArtwork, "square"),
        (image((1000, 1000)), InvalidArtwork, "at least"),
        (image((1500, 1500), "GIF"), UnsupportedImage, "JPEG or PNG"),
        (image((1500, 1500), "BMP"), UnsupportedImage, "JPEG or PNG"),
        (b"%PDF-1.7 not an image", UnsupportedImage, "JPEG or PNG"),
        (b"", UnsupportedImage, "JPEG or PNG"),
        (image((1400, 1400))[:2000], InvalidArtwork, "damaged"),
        (image((1400, 1400), "JPEG")[:3000], InvalidArtwork, "damaged"),
        (bomb_png(6001), InvalidArtwork, "larger than artwork"),
        (bomb_png(50_000), InvalidArtwork, "larger than artwork"),
    ],
)
def test_refusals(tmp_path: Path, data: bytes, error: type[Exception], wording: str) -> None:
    with pytest.raises(error, match=wording):
        inspect_image(saved(tmp_path, data))


async def test_artwork_upload_and_replacement(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    track = await draft(client, artist)
    first = await client.put(
        f"/api/tracks/{track['id']}/artwork",
        content=image((1400, 1400), "JPEG"),
        headers={"Content-Type": "image/jpeg", **artist},
    )
    assert first.status_code == 200, first.text
    art: dict[str, Any] = first.json()["artwork"]
    assert (art["format"], art["width"], art["height"]) == ("jpeg", 1400, 1400)
    refused = await client.put(
        f"/api/tracks/{track['id']}/artwork",
        content=image((1400, 1000)),
        headers={"Content-Type": "image/png", **artist},
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_artwork"
    second = await client.put(
        f"/api/tracks/{track['id']}/artwork",
        content=image((1600, 1600)),
        headers={"Content-Type": "image/png", **artist},
    )
    assert second.json()["artwork"]["format"] == "png"
    stored = [p for p in settings.effective_storage_dir.rglob("*") if p.is_file()]
    assert [p.suffix for p in stored] == [".png"]  # the replaced JPEG is gone
