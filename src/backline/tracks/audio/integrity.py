"""Completeness checks: does the file hold all the audio its headers declare?

They walk container sizes and frame headers only, never decoding audio.
"""

from __future__ import annotations

import struct
from typing import IO, Any, Final

from backline.tracks.audio.formats import (
    FLAC_TAIL_UNKNOWN_FRAME,
    InvalidAudio,
)

# -- completeness checks ----------------------------------------------------------------------


def check_iff(
    file: IO[bytes], size: int, *, little_endian: bool, chunk_id: bytes, label: str
) -> None:
    """The audio chunk of a RIFF (WAV) or FORM (AIFF) file must fit in the file.

    Walks the top-level chunks (4-byte id, 4-byte size, data padded to an even length). A
    missing final pad byte is tolerated: many writers omit it.
    """
    layout = "<4sI" if little_endian else ">4sI"
    offset = 12
    while offset + 8 <= size:
        file.seek(offset)
        found, length = struct.unpack(layout, file.read(8))
        if found == chunk_id:
            held = size - offset - 8
            if length > held:
                raise InvalidAudio(
                    f"The {label} file is truncated: its audio data declares {length} bytes"
                    f" but the file holds {held}."
                )
            return
        offset += 8 + length + (length & 1)
    raise InvalidAudio(f"The {label} file is truncated or corrupt: it has no audio data chunk.")


def check_mp4_boxes(file: IO[bytes], size: int) -> None:
    """Every top-level box of an M4A file must fit in the file, and its media data be there."""
    offset, seen = 0, set()
    while offset < size:
        file.seek(offset)
        header = file.read(16)
        if len(header) < 8:
            raise InvalidAudio("The M4A file is truncated: it ends inside a box header.")
        length, kind = struct.unpack(">I4s", header[:8])
        if length == 1:
            if len(header) < 16:
                raise InvalidAudio("The M4A file is truncated: it ends inside a box header.")
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # the last box runs to the end of the file
            length = size - offset
        if length < 8:
            raise InvalidAudio("The M4A file is corrupt: a box has an impossible size.")
        if offset + length > size:
            raise InvalidAudio(
                f"The M4A file is truncated: its {kind.decode('latin-1')!r} box declares"
                f" {length} bytes but the file holds {size - offset}."
            )
        seen.add(kind)
        offset += length
    if b"mdat" not in seen:
        raise InvalidAudio("The M4A file has no media data: it holds a header only.")


def _crc_table(poly: int, width: int) -> tuple[int, ...]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else crc << 1
        table.append(crc & mask)
    return tuple(table)


_CRC8: Final = _crc_table(0x07, 8)
_CRC16: Final = _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _trailing_tags(tail: bytes) -> int:
    """How many bytes at the end of `tail` are ID3v1 or APEv2 tags, not audio frames."""
    end = len(tail)
    if end >= 128 and tail[end - 128 : end - 125] == b"TAG":
        end -= 128
    if end >= 32 and tail[end - 32 : end - 24] == b"APETAGEX":
        size, flags = struct.unpack("<II", tail[end - 20 : end - 12])
        end -= size + (32 if flags & 0x80000000 else 0)
    return len(tail) - max(end, 0)


def _flac_frame_header(data: bytes, at: int) -> tuple[int, int, bool] | None:
    """(coded number, block size, variable block size) of a FLAC frame header at `at` whose
    CRC-8 is right, else None."""
    if len(data) < at + 6:
        return None
    b1, b2, b3 = data[at + 1], data[at + 2], data[at + 3]
    size_code, rate_code = b2 >> 4, b2 & 0x0F
    if b1 not in (0xF8, 0xF9) or size_code == 0 or rate_code == 15 or b3 >> 4 > 10 or b3 & 1:
        return None
    # The frame (or sample) number, coded like UTF-8 in 1 to 7 bytes.
    pos, first = at + 4, data[at + 4]
    ones = 0
    while ones < 8 and first & (0x80 >> ones):
        ones += 1
    if ones in (1, 8):
        return None
    extra = max(ones - 1, 0)
    if len(data) < pos + 1 + extra:
        return None
    number = first & (0xFF >> (ones + 1))
    for byte in data[pos + 1 : pos + 1 + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = (number << 6) | (byte & 0x3F)
    pos += 1 + extra
    if size_code in (6, 7):
        width = size_code - 5
        block = int.from_bytes(data[pos : pos + width], "big") + 1
        pos += width
    elif size_code == 1:
        block = 192
    elif size_code <= 5:
        block = 576 << (size_code - 2)
    else:
        block = 256 << (size_code - 8)
    pos += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if len(data) <= pos or _crc8(data[at:pos]) != data[pos]:
        return None
    return number, block, b1 == 0xF9


def flac_end_sample(file: IO[bytes], size: int, stream: Any) -> int:
    """The sample just after the FLAC stream's last frame, read from that frame's header.

    The last frame is the last frame header (found by its sync code and CRC-8) whose frame runs
    to the end of the audio with a correct CRC-16; when none does, the file ends mid-frame.
    """
    window = stream.max_framesize + 32 if stream.max_framesize else FLAC_TAIL_UNKNOWN_FRAME
    start = max(0, size - window - 128 - 4096)  # room for trailing tags
    file.seek(start)
    tail = file.read()
    tail = tail[: len(tail) - _trailing_tags(tail)]
    at = len(tail) - 2
    while (at := tail.rfind(b"\xff", 0, at)) >= 0:
        header = _flac_frame_header(tail, at)
        if header is not None and _crc16(tail[at:-2]) == int.from_bytes(tail[-2:], "big"):
            number, block, variable = header
            first = number if variable else number * stream.max_blocksize
            return int(first + block)
    raise InvalidAudio(
        "The FLAC file is truncated or corrupt: it does not end with a complete frame."
    )
