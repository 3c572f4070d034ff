"""What is accepted, the limits that make a file plausible, and the refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

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
