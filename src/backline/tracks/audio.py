"""Audio validation: proof that an uploaded file really is audio, and what it is.

This module owns the answer to "is this file audio we accept?" for track uploads. It sniffs the
magic bytes, parses the file with mutagen and checks that the file holds all the audio its
header declares; the result is an `AudioInfo` (format, MIME type, duration, sample rate,
channels, bitrate). Accepted: WAV, FLAC, AIFF (and AIFF-C), MP3, M4A (AAC or ALAC), Ogg Vorbis
and Ogg Opus.

Refusals are problems with a stable code and a reason that names what the file is:

* 415 `not_audio` (`UnsupportedAudio`): empty, or not audio at all ("The file is a PNG image,
  not audio.", "The file is plain text, not audio.", executables, archives, documents...);
* 415 `unsupported_audio_format` (`UnsupportedAudioFormat`): audio, but in a format not
  accepted (WMA, raw AAC, MP2, WebM...), so the client can say "convert it";
* 422 `invalid_audio` (`InvalidAudio`): it claims an accepted format but is truncated,
  corrupt, or states a zero or absurd duration, sample rate or channel count.

The client's declared Content-Type is not trusted: browsers send `application/octet-stream`,
`audio/x-wav`, `video/mp4` for M4A and so on, and a wrong label must neither let a non-audio
file in nor keep a real one out. The format sniffed from the content wins, and the stored
object should carry `AudioInfo.mime_type`, never the declared type.

mutagen reads the headers but mostly believes them: a WAV, AIFF, FLAC, M4A or VBR MP3 cut short
still reports its full duration. So each format also gets a completeness check: the audio
chunk (WAV, AIFF) or every top-level box (M4A) must fit in the file; an Ogg stream must end
with its end-of-stream page; an MP3 must be as long as its Xing/Info header says (within half
a percent and two frames: encoders pad); a FLAC file must end with an intact frame (CRC-8 and
CRC-16 checked) that holds the stream's last sample. Those walk only container sizes and frame
headers, never decode audio. Known limits: an MP3 without a Xing/Info header has its duration
estimated from its size, so a cut is not seen; an MP4 video with an AAC soundtrack is taken as
M4A (mutagen reads its first audio track).

`inspect_file` is synchronous and does blocking file I/O: run it in a worker thread.
"""

from __future__ import annotations

import codecs
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from mutagen.aiff import AIFFInfo
from mutagen.flac import FLAC
from mutagen.mp3 import MPEGInfo
from mutagen.mp4 import MP4
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WaveStreamInfo

from backline.errors import ProblemError, Unprocessable

MIME_TYPES: Final[Mapping[str, str]] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "aiff": "audio/aiff",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
}
FORMATS: Final = frozenset(MIME_TYPES)
LABELS: Final[Mapping[str, str]] = {
    "wav": "WAV",
    "flac": "FLAC",
    "aiff": "AIFF",
    "mp3": "MP3",
    "m4a": "M4A",
    "ogg": "Ogg Vorbis",
    "opus": "Ogg Opus",
}
ACCEPTED: Final = "WAV, FLAC, AIFF, MP3, M4A (AAC or ALAC), Ogg Vorbis or Ogg Opus"

HEAD_SIZE: Final = 4096  # bytes read for sniffing; every accepted signature fits in far fewer
MAX_DURATION_SECONDS: Final = 12 * 3600.0  # longer is a corrupt header, not a track
MIN_SAMPLE_RATE: Final = 1000
MAX_SAMPLE_RATE: Final = 768_000
MAX_CHANNELS: Final = 64
MAX_ID3_TAGS: Final = 8  # stacked ID3v2 tags skipped before the audio
OPUS_SAMPLE_RATE: Final = 48_000  # Opus always decodes at 48 kHz, whatever the input rate was
# An MP3 may hold a little less than its Xing/Info header's frame count times its bitrate
# implies (bitrate rounding, encoder delay and padding): this share plus two frames.
MP3_SLACK_SHARE: Final = 0.005
MP3_SLACK_FRAMES: Final = 2
MP3_FRAME_SAMPLES: Final = 1152  # the most samples an MPEG audio frame holds
FLAC_TAIL_UNKNOWN_FRAME: Final = 1 << 20  # tail searched when STREAMINFO has no max frame size
LEGACY_TEXT_ASCII_SHARE: Final = 0.7  # non-UTF-8 text is mostly ASCII (English, European)
M4A_CODECS: Final = ("mp4a.40.", "alac")  # AAC (every profile) and Apple Lossless


class UnsupportedAudio(ProblemError):
    """The upload is not audio (or is empty): 415."""

    status, code = 415, "not_audio"


class UnsupportedAudioFormat(UnsupportedAudio):
    """The upload is audio, but in a format that is not accepted: 415."""

    code = "unsupported_audio_format"


class InvalidAudio(Unprocessable):
    """The upload claims an accepted format but is truncated or corrupt: 422."""

    code = "invalid_audio"


@dataclass(frozen=True)
class AudioInfo:
    format: str  # "wav" | "flac" | "aiff" | "mp3" | "m4a" | "ogg" | "opus"
    mime_type: str
    duration_seconds: float
    sample_rate: int | None
    channels: int | None
    bitrate: int | None  # bits per second, as the container or encoder states it


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
        end = _id3_size(head)
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


def _id3_size(head: bytes) -> int | None:
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


def _refusal(head: bytes) -> UnsupportedAudio:
    """The problem for a file whose first bytes are no accepted audio format."""
    if not head:
        return UnsupportedAudio("The file is empty.")
    other_audio = _other_audio(head)
    if other_audio is not None:
        return UnsupportedAudioFormat(
            f"The file is {other_audio} audio, which is not accepted. Upload {ACCEPTED}."
        )
    what = _not_audio(head)
    if what is not None:
        return UnsupportedAudio(f"The file is {what}, not audio.")
    return UnsupportedAudio(f"The file is not in a recognised audio format. Upload {ACCEPTED}.")


def _other_audio(head: bytes) -> str | None:
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


def _not_audio(head: bytes) -> str | None:
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


# -- inspection -----------------------------------------------------------------------------


def inspect_file(path: Path, *, declared_type: str | None = None) -> AudioInfo:
    """Prove that the file at `path` is accepted audio and describe it, or raise a problem.

    `declared_type` (the client's Content-Type) is accepted for the record but deliberately
    not used: the content decides (see the module docstring). Raises `UnsupportedAudio` (415)
    for what is not audio, `UnsupportedAudioFormat` (415) for audio in another format and
    `InvalidAudio` (422) for a truncated or corrupt file of an accepted format.
    """
    del declared_type  # never trusted; the sniffed format wins
    with path.open("rb") as file:
        size = file.seek(0, 2)
        file.seek(0)
        head = file.read(HEAD_SIZE)
        fmt = sniff(head)
        if fmt is None:
            raise _refusal(head)
        if fmt in ("mp3", "flac") and head[:3] == b"ID3":
            fmt = _format_after_id3(file, size)
        if fmt == "m4a":  # before mutagen, whose errors on a cut file say little
            _check_mp4_boxes(file, size)
        stream = _parse(fmt, file)
        duration = _check_complete(fmt, file, size, stream)
        return _audio_info(fmt, stream, duration)


def _format_after_id3(file: IO[bytes], size: int) -> str:
    """Whether what follows the ID3v2 tags is FLAC or (taken as) MP3; other formats refused."""
    offset = 0
    for _ in range(MAX_ID3_TAGS):
        file.seek(offset)
        tag = _id3_size(file.read(10))
        if tag is None:
            break
        offset += tag
    if offset >= size:
        raise InvalidAudio("The file holds an ID3 tag but no audio after it.")
    file.seek(offset)
    after = file.read(HEAD_SIZE)
    inner = sniff(after)
    if inner == "flac":
        return "flac"
    if inner is None and (_other_audio(after) is not None or _not_audio(after) is not None):
        raise _refusal(after)
    # Otherwise MP3: mutagen searches past any padding or junk for a run of MPEG frames.
    return "mp3"


def _parse(fmt: str, file: IO[bytes]) -> Any:
    """mutagen's stream information for `fmt`; `InvalidAudio` when it cannot read the file.

    WAV, AIFF and MP3 are read through their stream-info classes, so broken tags never
    reject good audio; FLAC, M4A and Ogg need their full file classes for the stream details.
    """
    file.seek(0)
    try:
        if fmt == "wav":
            return WaveStreamInfo(file)
        if fmt == "aiff":
            return AIFFInfo(file)
        if fmt == "mp3":
            return MPEGInfo(file)
        if fmt == "flac":
            return FLAC(file).info  # type: ignore[no-untyped-call]
        if fmt == "m4a":
            return MP4(file).info  # type: ignore[no-untyped-call]
        if fmt == "ogg":
            return OggVorbis(file).info  # type: ignore[no-untyped-call]
        return OggOpus(file).info  # type: ignore[no-untyped-call]
    except OSError:
        raise  # our own read failed: not the client's fault
    except Exception as exc:  # mutagen raises assorted errors on hostile input
        reason = str(exc).strip()[:200] or type(exc).__name__
        raise InvalidAudio(
            f"The file looks like {LABELS[fmt]} but could not be read: {reason}."
        ) from exc


def _check_complete(fmt: str, file: IO[bytes], size: int, stream: Any) -> float:
    """Raise `InvalidAudio` unless the file holds what its headers declare; the duration."""
    label = LABELS[fmt]
    duration = float(stream.length)
    if fmt in ("wav", "aiff"):
        chunk = b"data" if fmt == "wav" else b"SSND"
        _check_iff(file, size, little_endian=fmt == "wav", chunk_id=chunk, label=label)
    elif fmt == "mp3":
        if stream.layer != 3:
            raise UnsupportedAudioFormat(
                f"The file is MPEG layer {stream.layer} audio (MP{stream.layer}), which is not"
                f" accepted. Upload {ACCEPTED}."
            )
        if stream.sketchy:
            raise InvalidAudio("The file looks like MP3 but holds no run of valid MPEG frames.")
        held = size - int(getattr(stream, "frame_offset", 0))
        declared = stream.bitrate * duration / 8
        frame = stream.bitrate / 8 * MP3_FRAME_SAMPLES / stream.sample_rate
        if held < declared * (1 - MP3_SLACK_SHARE) - MP3_SLACK_FRAMES * frame:
            raise InvalidAudio(
                f"The MP3 file is truncated: its header declares about {declared:.0f} bytes of"
                f" audio but it holds {held}."
            )
    elif fmt == "flac":
        end_sample = _flac_end_sample(file, size, stream)
        if stream.total_samples == 0:  # not stated in STREAMINFO: the last frame tells
            duration = end_sample / stream.sample_rate if stream.sample_rate else 0.0
        elif end_sample < stream.total_samples:
            raise InvalidAudio(
                f"The FLAC file is truncated: it ends at sample {end_sample} of"
                f" {stream.total_samples}."
            )
        elif end_sample > stream.total_samples:
            raise InvalidAudio(
                f"The FLAC file is corrupt: it holds {end_sample} samples but its header"
                f" declares {stream.total_samples}."
            )
    elif fmt == "m4a":
        codec = str(stream.codec)
        if not codec:
            raise InvalidAudio("The M4A file has no audio track.")
        if not codec.startswith(M4A_CODECS):
            name = stream.codec_description or codec
            raise UnsupportedAudioFormat(
                f"The M4A file holds {name} audio, which is not accepted (AAC or ALAC only)."
            )
    else:  # Ogg Vorbis, Ogg Opus
        file.seek(0)
        try:
            last = OggPage.find_last(file, stream.serial)  # type: ignore[no-untyped-call]
        except OSError:
            raise
        except Exception:
            last = None
        if last is None or not last.last:
            raise InvalidAudio(f"The {label} file is truncated: its stream has no final page.")
    _check_plausible(label, duration, stream)
    return duration


def _check_plausible(label: str, duration: float, stream: Any) -> None:
    if not math.isfinite(duration) or duration <= 0:
        raise InvalidAudio(f"The {label} file contains no audio: it states no positive duration.")
    if duration > MAX_DURATION_SECONDS:
        hours = MAX_DURATION_SECONDS / 3600
        raise InvalidAudio(
            f"The {label} file states a duration of {duration / 3600:.1f} hours; more than"
            f" {hours:.0f} hours is taken as a corrupt header."
        )
    rate = getattr(stream, "sample_rate", None)
    if rate is not None and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudio(f"The {label} file states an implausible sample rate ({rate} Hz).")
    channels = getattr(stream, "channels", None)
    if channels is not None and not 1 <= channels <= MAX_CHANNELS:
        raise InvalidAudio(f"The {label} file states an implausible channel count ({channels}).")


def _audio_info(fmt: str, stream: Any, duration: float) -> AudioInfo:
    rate = OPUS_SAMPLE_RATE if fmt == "opus" else getattr(stream, "sample_rate", None)
    channels = getattr(stream, "channels", None)
    bitrate = getattr(stream, "bitrate", None)
    return AudioInfo(
        format=fmt,
        mime_type=MIME_TYPES[fmt],
        duration_seconds=duration,
        sample_rate=int(rate) if rate else None,
        channels=int(channels) if channels else None,
        bitrate=int(bitrate) if bitrate and bitrate > 0 else None,
    )


# -- completeness checks ----------------------------------------------------------------------


def _check_iff(
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


def _check_mp4_boxes(file: IO[bytes], size: int) -> None:
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


def _flac_end_sample(file: IO[bytes], size: int, stream: Any) -> int:
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
