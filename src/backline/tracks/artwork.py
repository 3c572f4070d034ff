"""Artwork validation with Pillow: JPEG or PNG, square, 1400 to 6000 pixels a side.

The header is read first and judged before any pixel is decoded: a file claiming more pixels
than the largest artwork allowed, or more decoded bytes than `max_artwork_decoded_bytes`
(pixels times the bytes each pixel takes in the file: a 16-bit RGBA pixel is 8), is refused
without decoding it (a decompression bomb: a few kilobytes that expand to hundreds of MiB).
Only then is the body checked whole, without ever holding the full image: a JPEG is decoded at
an eighth of its size (libjpeg reads every block all the same), and a PNG has its chunks'
checksums verified and its pixel stream inflated a piece at a time and counted, which catches
truncated and corrupt files as a full decode would. `Checks` runs these in worker threads, at
most a few at once per process, so concurrent uploads cannot stack their decodes in memory.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import warnings
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import anyio
import anyio.to_thread

from backline.errors import ProblemError, Unprocessable

MIN_SIDE: Final = 1400
MAX_SIDE: Final = 6000
MAX_PIXELS: Final = MAX_SIDE * MAX_SIDE
FORMATS: Final = {"JPEG": ("jpeg", "image/jpeg"), "PNG": ("png", "image/png")}
PNG_CHANNELS: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
ADAM7: Final = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4))
ADAM7_LAST: Final = ((1, 0, 2, 2), (0, 1, 1, 2))
INFLATE_PIECE: Final = 64 * 1024


class UnsupportedImage(ProblemError):
    status, code = 415, "not_artwork"


class InvalidArtwork(Unprocessable):
    code = "invalid_artwork"


class ArtworkTooLarge(InvalidArtwork):
    code = "artwork_too_large"


@dataclass(frozen=True)
class ArtworkInfo:
    format: str
    mime_type: str
    width: int
    height: int


def inspect_image(path: Path, *, max_decoded_bytes: int = MAX_PIXELS * 4) -> ArtworkInfo:
    # Imported at the first artwork, not at start-up: a process may never inspect an image.
    from PIL import Image, UnidentifiedImageError

    # Pillow's own bomb guard, at the same ceiling: warns past it, refuses past twice it.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=list(FORMATS)) as image:
                width, height = image.size
                kind = image.format or ""
                _judge(kind, width, height)
                if kind == "PNG":
                    depth, colour, interlaced = _png_header(path)
                    bits = depth * PNG_CHANNELS.get(colour, 4)
                else:
                    bits = 8 * len(image.getbands())
                if width * height * bits > max_decoded_bytes * 8:
                    raise ArtworkTooLarge(
                        f"The image would take {width * height * bits // 8 // 2**20} MiB "
                        f"decoded; artwork may take at most {max_decoded_bytes // 2**20} MiB."
                    )
                if kind == "JPEG":
                    image.draft(image.mode, (width // 8, height // 8))
                    image.load()  # every block is read: truncation and corruption show here
                else:
                    image.verify()  # every chunk's CRC, through to the end of the file
            if kind == "PNG":
                _check_png_pixels(path, _png_data_size(width, height, bits, interlaced))
        except UnidentifiedImageError:
            raise UnsupportedImage("Artwork must be a JPEG or PNG image.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ArtworkTooLarge("The image is larger than artwork may be.") from None
        except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as exc:
            raise InvalidArtwork(
                f"The image is damaged or incomplete ({type(exc).__name__})."
            ) from None
    extension, mime = FORMATS[kind]
    return ArtworkInfo(format=extension, mime_type=mime, width=width, height=height)


def _judge(kind: str, width: int, height: int) -> None:
    if kind not in FORMATS:
        raise UnsupportedImage("Artwork must be a JPEG or PNG image.")
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise ArtworkTooLarge(f"Artwork may be at most {MAX_SIDE}x{MAX_SIDE} pixels.")
    if width != height:
        raise InvalidArtwork(f"Artwork must be square; this is {width}x{height}.")
    if width < MIN_SIDE:
        raise InvalidArtwork(f"Artwork must be at least {MIN_SIDE}x{MIN_SIDE} pixels.")


def _png_header(path: Path) -> tuple[int, int, bool]:
    """Bit depth, colour type and interlacing, from the IHDR chunk Pillow has already found."""
    with path.open("rb") as file:
        file.seek(8 + 8 + 8)  # signature, IHDR's length and type, width and height
        depth, colour, _, _, interlace = struct.unpack(">5B", file.read(5))
    return depth, colour, interlace == 1


def _png_data_size(width: int, height: int, bits: int, interlaced: bool) -> int:
    """The inflated size of a PNG's pixel stream: each row is a filter byte and its pixels."""

    def rows(columns: int, count: int) -> int:
        return count * (1 + (columns * bits + 7) // 8) if columns and count else 0

    if not interlaced:
        return rows(width, height)
    return sum(
        rows((width - x + dx - 1) // dx, (height - y + dy - 1) // dy)
        for x, y, dx, dy in ADAM7 + ADAM7_LAST
    )


def _check_png_pixels(path: Path, expected: int) -> None:
    """Inflate every IDAT chunk a piece at a time, counting bytes, keeping none of them.

    Pillow only decodes a PNG whole, into memory; this proves the same thing (the stream
    inflates without error to every row the header promises) in constant memory.
    """
    inflater, produced = zlib.decompressobj(), 0
    with path.open("rb") as file:
        file.seek(8)
        while produced <= expected and (chunk := _next_chunk(file))[0] != b"IEND":
            kind, data = chunk
            while kind == b"IDAT" and produced <= expected:
                produced += len(inflater.decompress(data, INFLATE_PIECE))
                data = inflater.unconsumed_tail
                if not data:
                    break
    while not inflater.eof and produced < expected:
        piece = inflater.decompress(b"", INFLATE_PIECE)
        if not piece:
            break
        produced += len(piece)
    if produced < expected:  # trailing data past the last row is ignored, as decoders do
        raise ValueError("the pixel data is incomplete")


def _next_chunk(file: BinaryIO) -> tuple[bytes, bytes]:
    """The next chunk's type, and its data if it is pixels (IDAT); other chunks are skipped."""
    head = file.read(8)
    if len(head) < 8:
        raise ValueError("the file ends before its last chunk")
    length, kind = struct.unpack(">I4s", head)
    if kind != b"IDAT":
        file.seek(length + 4, 1)
        return kind, b""
    data = file.read(length)
    file.seek(4, 1)  # the CRC, already verified by Pillow
    if len(data) < length:
        raise ValueError("the file ends inside a chunk")
    return kind, data


class Checks:
    """Runs `inspect_image` in worker threads, at most `limit` at once in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._limiter = anyio.CapacityLimiter(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    async def inspect(self, path: Path, *, max_decoded_bytes: int) -> ArtworkInfo:
        return await anyio.to_thread.run_sync(
            self._run, path, max_decoded_bytes, limiter=self._limiter
        )

    def _run(self, path: Path, max_decoded_bytes: int) -> ArtworkInfo:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return inspect_image(path, max_decoded_bytes=max_decoded_bytes)
        finally:
            with self._lock:
                self.in_flight -= 1


# One `Checks` per event loop (a process serves on one; tests start a loop per test).
_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Checks] = weakref.WeakKeyDictionary()


def checks(limit: int) -> Checks:
    loop = asyncio.get_running_loop()
    current = _checks.get(loop)
    if current is None or current.limit != limit:
        current = _checks[loop] = Checks(limit)
    return current
