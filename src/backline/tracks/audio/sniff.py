"""Sniffing: which format the first bytes say a file is, and naming what a refused file is."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Final

from backline.tracks.audio.formats import (
    ACCEPTED,
    LEGACY_TEXT_ASCII_SHARE,
    UnsupportedAudio,
    UnsupportedAudioFormat,
)

# -- sniffing -------------------------------------------------------------------------------

_M4A_BRANDS: Final = frozenset(
    {b"M4A ", b"M4B ", b"M4P ", b"mp41", b"mp42", b"isom", b"iso2", b"iso4", b"iso5", b"iso6"}
    | {b"dash", b"MSNV", b"F4A ", b"F4B "}
)


def sniff(head: bytes) -> str | None:
    """The accepted audio format that the first bytes of a file announce, or None.

    Looks at signatures only (never raises, whatever the length): RIFF/WAVE, fLaC, FORM/AIFF or
    AIFC, an ID3v2 tag or an MPEG audio frame header (`mp3`), an ISO media `ftyp` box with an
    audio or generic MP4 brand (`m4a`), an Ogg page starting a Vorbis or Opus stream. An ID3 tag
    followed (within `head`) by fLaC is FLAC. What the file really holds is for the parser.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3":
        end = id3_size(head)
        if end is not None and head[end : end + 4] == b"fLaC":
            return "flac"
        return "mp3"
    if _mpeg_audio_layer(head) is not None:
        return "mp3"
    if head[4:8] == b"ftyp" and _ftyp_brands(head) & _M4A_BRANDS:
        return "m4a"
    if head[:4] == b"OggS":
        packet = _ogg_first_packet(head)
        if packet.startswith(b"\x01vorbis"):
            return "ogg"
        if packet.startswith(b"OpusHead"):
            return "opus"
    return None


def id3_size(head: bytes) -> int | None:
    """The size of the ID3v2 tag at the start of `head` (header and footer included)."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b >= 0x80 for b in head[6:10]):
        return None
    size = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9])
    if head[5] & 0x10:  # footer present
        size += 10
    return size


def _mpeg_audio_layer(head: bytes) -> int | None:
    """The layer (1-3) if `head` starts with a plausible MPEG audio frame header, else None."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    if version == 1 or layer == 0 or bitrate in (0, 15) or rate == 3:
        return None
    return 4 - layer


def _is_adts(head: bytes) -> bool:
    """Raw AAC in ADTS frames: the MPEG sync with layer bits 00."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


def _ftyp_brands(head: bytes) -> frozenset[bytes]:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return frozenset()
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size if size >= 16 else 16)
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    return frozenset([head[8:12], *compatible])


def _ogg_first_packet(head: bytes) -> bytes:
    if len(head) < 27:
        return b""
    return head[27 + head[26] :]


# -- naming what a refused file is -----------------------------------------------------------

_NOT_AUDIO: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"MThd", "a MIDI sequence (notes, not recorded sound)"),
    (b"FLV\x01", "a Flash video"),
)
_OTHER_AUDIO: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "Windows Media (WMA/ASF)"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (b"\x0b\x77", "AC-3"),
    (b"wvpk", "WavPack"),
    (b"MAC ", "Monkey's Audio (APE)"),
    (b"caff", "Core Audio (CAF)"),
    (b"#!AMR", "AMR"),
    (b"DSD ", "DSD (DSF)"),
    (b"FRM8", "DSD (DSDIFF)"),
    (b"RF64", "RF64 (WAV over 4 GiB)"),
    (b"BW64", "BW64 (WAV over 4 GiB)"),
    (b"RIFX", "big-endian WAV (RIFX)"),
    (b".snd", "Sun/NeXT audio (AU)"),
    (b"TTA1", "True Audio (TTA)"),
)
_OGG_OTHER: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x7fFLAC", "Ogg FLAC"),
    (b"Speex   ", "Ogg Speex"),
    (b"\x80theora", "Ogg Theora video"),
)
_RIFF_OTHER: Final[Mapping[bytes, str]] = {
    b"WEBP": "a WebP image",
    b"AVI ": "an AVI video",
}
_FTYP_OTHER: Final[Mapping[bytes, str]] = {
    b"heic": "a HEIF image",
    b"heix": "a HEIF image",
    b"mif1": "a HEIF image",
    b"avif": "an AVIF image",
    b"qt  ": "a QuickTime movie",
}
_TEXT_CONTROLS: Final = frozenset(b"\t\n\r\f\v\x1b")


def refusal(head: bytes) -> UnsupportedAudio:
    """The problem for a file whose first bytes are no accepted audio format."""
    if not head:
        return UnsupportedAudio("The file is empty.")
    other = other_audio(head)
    if other is not None:
        return UnsupportedAudioFormat(
            f"The file is {other} audio, which is not accepted. Upload {ACCEPTED}."
        )
    what = not_audio(head)
    if what is not None:
        return UnsupportedAudio(f"The file is {what}, not audio.")
    return UnsupportedAudio(f"The file is not in a recognised audio format. Upload {ACCEPTED}.")


def other_audio(head: bytes) -> str | None:
    if _is_adts(head):
        return "raw AAC (ADTS)"
    if head[:4] == b"OggS":
        packet = _ogg_first_packet(head)
        for prefix, name in _OGG_OTHER:
            if packet.startswith(prefix):
                return name
    for prefix, name in _OTHER_AUDIO:
        if head.startswith(prefix):
            return name
    return None


def not_audio(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_OTHER:
        return _RIFF_OTHER[head[8:12]]
    if head[4:8] == b"ftyp":
        for brand in sorted(_ftyp_brands(head)):
            if brand in _FTYP_OTHER:
                return _FTYP_OTHER[brand]
    for prefix, name in _NOT_AUDIO:
        if head.startswith(prefix):
            return name
    return _text_kind(head)


def _text_kind(head: bytes) -> str | None:
    """What kind of text `head` is, if it reads as text at all."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "plain text"  # UTF-16 with a byte-order mark
    if any((b < 0x20 and b not in _TEXT_CONTROLS) or b == 0x7F for b in head):
        return None  # binary data has control bytes; text (in any 8-bit encoding) has none
    try:  # not final: the head may end inside a multi-byte character
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:  # a legacy 8-bit encoding: accented letters among ASCII
        ascii_share = sum(1 for b in head if b < 0x80) / len(head)
        if ascii_share < LEGACY_TEXT_ASCII_SHARE:
            return None
        text = head.decode("latin-1")
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith(("<!doctype html", "<html")):
        return "an HTML document"
    if start.startswith("<?xml"):
        return "an XML document"
    if start.startswith("#!"):
        return "a script"
    return "plain text"
