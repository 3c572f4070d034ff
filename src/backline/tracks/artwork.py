"""Artwork validation with Pillow: JPEG or PNG, square, 1400 to 6000 pixels a side.

The header is read first and judged before any pixel is decoded: a file claiming more pixels
than the largest artwork allowed is refused without decoding it (a decompression bomb: a few
kilobytes that expand to gigabytes). Only then is the image decoded in full, under Pillow's own
bomb guard set to that same ceiling, which also catches truncated and corrupt files.
`inspect_image` is synchronous and CPU-bound: run it in a worker thread.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, UnidentifiedImageError

from backline.errors import ProblemError, Unprocessable

MIN_SIDE: Final = 1400
MAX_SIDE: Final = 6000
MAX_PIXELS: Final = MAX_SIDE * MAX_SIDE
FORMATS: Final = {"JPEG": ("jpeg", "image/jpeg"), "PNG": ("png", "image/png")}
# Pillow's own bomb guard, at the same ceiling: warns past it, refuses past twice it.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class UnsupportedImage(ProblemError):
    status, code = 415, "not_artwork"


class InvalidArtwork(Unprocessable):
    code = "invalid_artwork"


@dataclass(frozen=True)
class ArtworkInfo:
    format: str
    mime_type: str
    width: int
    height: int


def inspect_image(path: Path) -> ArtworkInfo:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=list(FORMATS)) as image:
                width, height = image.size
                kind = image.format or ""
                _judge(kind, width, height)
                image.load()  # decodes every pixel: truncation and corruption show here
        except UnidentifiedImageError:
            raise UnsupportedImage("Artwork must be a JPEG or PNG image.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidArtwork("The image is larger than artwork may be.") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidArtwork(
                f"The image is damaged or incomplete ({type(exc).__name__})."
            ) from None
    extension, mime = FORMATS[kind]
    return ArtworkInfo(format=extension, mime_type=mime, width=width, height=height)


def _judge(kind: str, width: int, height: int) -> None:
    if kind not in FORMATS:
        raise UnsupportedImage("Artwork must be a JPEG or PNG image.")
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise InvalidArtwork(f"Artwork may be at most {MAX_SIDE}x{MAX_SIDE} pixels.")
    if width != height:
        raise InvalidArtwork(f"Artwork must be square; this is {width}x{height}.")
    if width < MIN_SIDE:
        raise InvalidArtwork(f"Artwork must be at least {MIN_SIDE}x{MIN_SIDE} pixels.")
