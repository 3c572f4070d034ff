"""Artwork: JPEG or PNG, square, 1400-6000 px, safe against decompression bombs."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from backline.config import Settings
from backline.tracks import artwork
from backline.tracks.artwork import ArtworkTooLarge, InvalidArtwork, UnsupportedImage, inspect_image
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


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
ADAM7 += [(0, 1, 1, 2)]


def zero_png(
    side: int, *, depth: int = 8, colour: int = 2, interlaced: bool = False, extra: int = 0
) -> bytes:
    """A black side x side PNG written row by row: a huge image in a few hundred KB."""
    channels = {0: 1, 2: 3, 6: 4}[colour]
    row_bytes = (side * channels * depth + 7) // 8
    if interlaced:
        passes = [((side - x + dx - 1) // dx, (side - y + dy - 1) // dy) for x, y, dx, dy in ADAM7]
        rows = [(w * channels * depth + 7) // 8 for w, h in passes for _ in range(h) if w]
    else:
        rows = [row_bytes] * side
    compressor, data = zlib.compressobj(9), []
    for length in rows:
        data.append(compressor.compress(b"\x00" * (1 + length)))
    data.append(compressor.compress(b"\x00" * extra))
    data.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, int(interlaced))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(data))
        + chunk(b"IEND", b"")
    )


MEASURE = """
import sys
from pathlib import Path
from backline.errors import ProblemError
from backline.tracks.artwork import inspect_image

def peak_kib():  # this process's own high-water RSS (ru_maxrss would include its parent's)
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])

inspect_image(Path(sys.argv[2]))  # the code is warm: only the big image's cost is measured
before = peak_kib()
try:
    inspect_image(Path(sys.argv[1]))
    outcome = "accepted"
except ProblemError as exc:
    outcome = exc.code
print(outcome, (peak_kib() - before) // 1024)
"""


def checked_in_subprocess(path: Path, warm_up: Path) -> tuple[str, int]:
    """Check an image in a fresh process: the outcome, and how many MiB its peak RSS grew."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(warm_up)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    outcome, grown = done.stdout.split()
    return outcome, int(grown)


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


def test_a_16_bit_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    """6000x6000 RGBA at 16 bits is 288 MB decoded from a few hundred KB: never decoded."""
    bomb = saved(tmp_path, zero_png(6000, depth=16, colour=6), "bomb.png")
    assert bomb.stat().st_size < 1024 * 1024
    with pytest.raises(ArtworkTooLarge) as refused:
        inspect_image(bomb)
    assert refused.value.code == "artwork_too_large"
    warm_up = saved(tmp_path, image((1400, 1400)), "small.png")
    outcome, grown_mib = checked_in_subprocess(bomb, warm_up)
    assert outcome == "artwork_too_large"
    assert grown_mib < 64


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_the_largest_artwork_is_checked_without_holding_it(tmp_path: Path, kind: str) -> None:
    """6000x6000 RGB is 108 MB decoded (144 MB in Pillow's memory): accepted, checked small."""
    if kind == "PNG":
        data = zero_png(6000)
    else:
        buffer = io.BytesIO()
        Image.new("RGB", (6000, 6000), (200, 30, 90)).save(buffer, "JPEG")
        data = buffer.getvalue()
    largest = saved(tmp_path, data, "largest")
    warm_up = saved(tmp_path, image((1400, 1400), kind), "small")
    outcome, grown_mib = checked_in_subprocess(largest, warm_up)
    assert outcome == "accepted"
    assert grown_mib < 64


def test_the_decoded_size_bound_is_a_setting(tmp_path: Path) -> None:
    png = saved(tmp_path, zero_png(2000, colour=6), "rgba.png")  # 16 MB decoded
    assert inspect_image(png, max_decoded_bytes=16_000_000).width == 2000
    with pytest.raises(ArtworkTooLarge, match="MiB"):
        inspect_image(png, max_decoded_bytes=15_999_999)


@pytest.mark.parametrize(
    ("data", "accepted"),
    [
        (zero_png(1400, interlaced=True), True),
        (zero_png(1401, colour=0, interlaced=True), True),
        (zero_png(1400, colour=0, depth=16), True),
        (zero_png(1400, extra=1), True),
        (zero_png(1400)[:-40] + zero_png(1400)[-12:], False),  # the stream is cut short
        (bomb_png(1400), False),  # the header claims far more rows than there are
    ],
)
def test_the_pixel_stream_is_counted(tmp_path: Path, data: bytes, accepted: bool) -> None:
    """A PNG is accepted whole (Pillow's full decode agrees) and refused short of its rows."""
    path = saved(tmp_path, data, "art.png")
    if accepted:
        with Image.open(path) as decoded:
            decoded.load()
        assert inspect_image(path).width in (1400, 1401)
    else:
        with pytest.raises(InvalidArtwork, match="damaged"):
            inspect_image(path)


async def test_checks_run_a_few_at_once(tmp_path: Path) -> None:
    checks = artwork.Checks(2)
    paths = [saved(tmp_path, image((1400 + 2 * i, 1400 + 2 * i)), f"{i}.png") for i in range(8)]
    results: list[int] = []

    async def check(path: Path) -> None:
        results.append((await checks.inspect(path, max_decoded_bytes=10**9)).width)

    async with anyio.create_task_group() as group:
        for path in paths:
            group.start_soon(check, path)
    assert sorted(results) == [1400 + 2 * i for i in range(8)]
    assert 1 <= checks.most_in_flight <= 2
    assert checks.in_flight == 0


async def test_uploads_wait_for_their_turn_and_a_bomb_is_a_problem(
    client: httpx.AsyncClient, artist: dict[str, str], settings: Settings
) -> None:
    assert settings.artwork_check_concurrency == 2
    tracks = [await draft(client, artist) for _ in range(5)]

    async def upload(track: dict[str, Any]) -> None:
        response = await client.put(
            f"/api/tracks/{track['id']}/artwork",
            content=image((1400, 1400)),
            headers={"Content-Type": "image/png", **artist},
        )
        assert response.status_code == 200, response.text

    async with anyio.create_task_group() as group:
        for track in tracks:
            group.start_soon(upload, track)
    assert artwork.checks(2).most_in_flight <= 2
    refused = await client.put(
        f"/api/tracks/{tracks[0]['id']}/artwork",
        content=zero_png(6000, depth=16, colour=6),
        headers={"Content-Type": "image/png", **artist},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "artwork_too_large"
