"""`inspect_file`: sniff, parse with mutagen, check completeness and plausibility."""

from __future__ import annotations

import math
from pathlib import Path
from typing import IO, Any

from backline.tracks.audio.formats import (
    ACCEPTED,
    HEAD_SIZE,
    LABELS,
    M4A_CODECS,
    MAX_CHANNELS,
    MAX_DURATION_SECONDS,
    MAX_ID3_TAGS,
    MAX_SAMPLE_RATE,
    MIME_TYPES,
    MIN_SAMPLE_RATE,
    MP3_FRAME_SAMPLES,
    MP3_SLACK_FRAMES,
    MP3_SLACK_SHARE,
    OPUS_SAMPLE_RATE,
    AudioInfo,
    InvalidAudio,
    UnsupportedAudioFormat,
)
from backline.tracks.audio.integrity import check_iff, check_mp4_boxes, flac_end_sample
from backline.tracks.audio.sniff import id3_size, not_audio, other_audio, refusal, sniff

# -- inspection -----------------------------------------------------------------------------


def inspect_file(path: Path, *, declared_type: str | None = None) -> AudioInfo:
    """Prove that the file at `path` is accepted audio and describe it, or raise a problem.

    `declared_type` (the client's Content-Type) is accepted for the record but deliberately
    not used: the content decides (see the package's docstring). Raises `UnsupportedAudio` (415)
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
            raise refusal(head)
        if fmt in ("mp3", "flac") and head[:3] == b"ID3":
            fmt = _format_after_id3(file, size)
        if fmt == "m4a":  # before mutagen, whose errors on a cut file say little
            check_mp4_boxes(file, size)
        stream = _parse(fmt, file)
        duration = _check_complete(fmt, file, size, stream)
        return _audio_info(fmt, stream, duration)


def _format_after_id3(file: IO[bytes], size: int) -> str:
    """Whether what follows the ID3v2 tags is FLAC or (taken as) MP3; other formats refused."""
    offset = 0
    for _ in range(MAX_ID3_TAGS):
        file.seek(offset)
        tag = id3_size(file.read(10))
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
    if inner is None and (other_audio(after) is not None or not_audio(after) is not None):
        raise refusal(after)
    # Otherwise MP3: mutagen searches past any padding or junk for a run of MPEG frames.
    return "mp3"


def _parse(fmt: str, file: IO[bytes]) -> Any:
    """mutagen's stream information for `fmt`; `InvalidAudio` when it cannot read the file.

    WAV, AIFF and MP3 are read through their stream-info classes, so broken tags never
    reject good audio; FLAC, M4A and Ogg need their full file classes for the stream details.
    """
    # Imported at the first upload, not at start-up: a process may never inspect audio.
    from mutagen.aiff import AIFFInfo
    from mutagen.flac import FLAC
    from mutagen.mp3 import MPEGInfo
    from mutagen.mp4 import MP4
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WaveStreamInfo

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
        check_iff(file, size, little_endian=fmt == "wav", chunk_id=chunk, label=label)
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
        end_sample = flac_end_sample(file, size, stream)
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
        from mutagen.ogg import OggPage  # imported by `_parse` already

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
