"""Audio validation: every accepted format is recognised and described; what is not audio, audio
in another format, and truncated or corrupt files are refused with the right problem and a
reason naming what the file is.

WAV is generated here with the standard library. The other formats are tiny fixtures made once
with sox 14.4 and ffmpeg 5.1 (Debian 12); the tests only read them, so neither tool is needed
to run them:

    sox -R -n -r 22050 -c 2 -b 16 sine.flac synth 0.5 sine 440 sine 660 vol 0.5
    sox -R -n -r 8000 -c 1 -b 16 sine.aiff synth 0.5 sine 440 vol 0.5
    sox -R -n -r 8000 -c 1 -b 16 -t aifc sine.aifc synth 0.25 sine 440 vol 0.5
    B="-fflags +bitexact -flags:a +bitexact -map_metadata -1"
    S="sine=frequency=440:duration=0.5" P="-page_duration 100000"
    ffmpeg -f lavfi -i $S:sample_rate=22050 $B -ac 1 -c:a libmp3lame -b:a 32k sine.mp3
    ffmpeg -f lavfi -i $S:sample_rate=44100 $B -ac 2 -c:a aac -b:a 48k -movflags +faststart sine.m4a
    ffmpeg -f lavfi -i $S:sample_rate=22050 $B -ac 1 -c:a libvorbis -q:a 0 $P sine.ogg
    ffmpeg -f lavfi -i $S:sample_rate=48000 $B -ac 2 -c:a libopus -b:a 24k $P sine.opus
    ffmpeg -f lavfi -i $S:sample_rate=22050 $B -ac 1 -c:a mp2 -b:a 32k sine.mp2

(`$P` makes 0.1 s Ogg pages, so a cut file lacks its final page.)
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import random
import struct
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from backline.errors import ProblemError
from backline.tracks.audio import (
    MIME_TYPES,
    AudioInfo,
    InvalidAudio,
    UnsupportedAudio,
    UnsupportedAudioFormat,
    inspect_file,
    sniff,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def make_wav(
    seconds: float = 0.25, rate: int = 8000, channels: int = 1, sample_width: int = 2
) -> bytes:
    """A sine at 440 Hz, written by the standard library's `wave`."""
    frames = int(seconds * rate)
    peak = (1 << (8 * sample_width - 1)) - 1
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(sample_width)
        out.setframerate(rate)
        samples = bytearray()
        for i in range(frames):
            value = int(0.5 * peak * math.sin(2 * math.pi * 440 * i / rate))
            sample = (
                (value + 128).to_bytes(1)
                if sample_width == 1
                else value.to_bytes(sample_width, "little", signed=True)
            )
            samples += sample * channels
        out.writeframes(bytes(samples))
    return buffer.getvalue()


def id3_tag(padding: int = 32) -> bytes:
    """An ID3v2.4 tag holding only padding (its size is a 28-bit syncsafe integer)."""
    size = bytes([(padding >> 21) & 0x7F, (padding >> 14) & 0x7F, (padding >> 7) & 0x7F])
    return b"ID3\x04\x00\x00" + size + bytes([padding & 0x7F]) + bytes(padding)


def strip_id3(data: bytes) -> bytes:
    assert data[:3] == b"ID3"
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    return data[10 + size :]


def image(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, kind)
    return buffer.getvalue()


def elf_header() -> bytes:
    """The first kilobytes of a real executable (/bin/true), or a minimal ELF header."""
    true = Path("/bin/true")
    if true.is_file() and true.read_bytes()[:4] == b"\x7fELF":
        return true.read_bytes()[:4096]
    return b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHI", 3, 62, 1) + bytes(512)


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("song.wav.txt", "not a song")
    return buffer.getvalue()


def random_bytes(size: int, seed: int = 6) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[bytes], Path]:
    counter = iter(range(1_000_000))

    def write(data: bytes, name: str = "upload.wav") -> Path:
        path = tmp_path / f"{next(counter)}-{name}"
        path.write_bytes(data)
        return path

    return write


Write = Callable[..., Path]


# -- accepted formats ---------------------------------------------------------------------

ACCEPTED = [
    # source, format, duration, sample rate, channels
    pytest.param(lambda: make_wav(), "wav", 0.25, 8000, 1, id="wav-mono-16bit"),
    pytest.param(
        lambda: make_wav(0.1, 44100, 2, sample_width=3), "wav", 0.1, 44100, 2, id="wav-24bit"
    ),
    pytest.param(lambda: make_wav(0.2, 11025, 1, 1), "wav", 0.2, 11025, 1, id="wav-8bit"),
    pytest.param(lambda: fixture("sine.flac"), "flac", 0.5, 22050, 2, id="flac"),
    pytest.param(lambda: fixture("sine.aiff"), "aiff", 0.5, 8000, 1, id="aiff"),
    pytest.param(lambda: fixture("sine.aifc"), "aiff", 0.25, 8000, 1, id="aifc"),
    pytest.param(lambda: fixture("sine.mp3"), "mp3", 0.5, 22050, 1, id="mp3"),
    pytest.param(lambda: strip_id3(fixture("sine.mp3")), "mp3", 0.5, 22050, 1, id="mp3-bare"),
    pytest.param(lambda: fixture("sine.m4a"), "m4a", 0.5, 44100, 2, id="m4a"),
    pytest.param(lambda: fixture("sine.ogg"), "ogg", 0.5, 22050, 1, id="ogg-vorbis"),
    pytest.param(lambda: fixture("sine.opus"), "opus", 0.5, 48000, 2, id="opus"),
    pytest.param(lambda: id3_tag() + fixture("sine.flac"), "flac", 0.5, 22050, 2, id="id3+flac"),
]


@pytest.mark.parametrize(("source", "fmt", "duration", "rate", "channels"), ACCEPTED)
def test_accepted_formats_are_recognised_and_described(
    write: Write,
    source: Callable[[], bytes],
    fmt: str,
    duration: float,
    rate: int,
    channels: int,
) -> None:
    data = source()
    assert sniff(data[:64]) == fmt

    info = inspect_file(write(data))

    assert info.format == fmt
    assert info.mime_type == MIME_TYPES[fmt]
    # Lossy encoders add a few milliseconds of priming and padding.
    assert info.duration_seconds == pytest.approx(duration, abs=0.1)
    assert info.sample_rate == rate
    assert info.channels == channels
    assert info.bitrate is not None
    assert info.bitrate > 0


def test_wav_duration_is_exact(write: Write) -> None:
    info = inspect_file(write(make_wav(1.5, 16000, 2)))

    assert info == AudioInfo(
        format="wav",
        mime_type="audio/wav",
        duration_seconds=1.5,
        sample_rate=16000,
        channels=2,
        bitrate=16000 * 2 * 16,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.format = "mp3"  # type: ignore[misc]


@pytest.mark.parametrize("declared", ["image/png", "text/plain", "audio/mpeg", None])
def test_the_declared_content_type_is_not_trusted(write: Write, declared: str | None) -> None:
    info = inspect_file(write(fixture("sine.flac")), declared_type=declared)

    assert (info.format, info.mime_type) == ("flac", "audio/flac")
    with pytest.raises(UnsupportedAudio):
        inspect_file(write(image("PNG")), declared_type="audio/wav")


def test_the_file_name_does_not_matter(write: Write) -> None:
    assert inspect_file(write(fixture("sine.ogg"), "song.mp3")).format == "ogg"


# -- not audio: 415 not_audio ---------------------------------------------------------------

NOT_AUDIO = [
    pytest.param(b"", "The file is empty.", id="empty"),
    pytest.param(
        b"Verse 1\nI wrote this song on a Tuesday\n" * 40, "plain text, not audio", id="text"
    ),
    pytest.param("Café crème, naïve\n".encode() * 50, "plain text", id="text-utf8"),
    pytest.param("Café crème\n".encode("latin-1") * 50, "plain text", id="text-latin1"),
    pytest.param("lyrics\n".encode("utf-16") * 20, "plain text", id="text-utf16"),
    pytest.param(b"<!DOCTYPE html><html><body>hi</body></html>", "HTML document", id="html"),
    pytest.param(b"#!/bin/sh\nrm -rf /tmp/x\n", "a script", id="script"),
    pytest.param(image("PNG"), "The file is a PNG image, not audio.", id="png"),
    pytest.param(image("JPEG"), "The file is a JPEG image, not audio.", id="jpeg"),
    pytest.param(image("GIF"), "GIF image", id="gif"),
    pytest.param(image("WEBP"), "WebP image", id="webp"),
    pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF document", id="pdf"),
    pytest.param(zip_archive(), "The file is a ZIP archive, not audio.", id="zip"),
    pytest.param(gzip.compress(b"x" * 100), "gzip archive", id="gzip"),
    pytest.param(elf_header(), "The file is an ELF executable, not audio.", id="elf"),
    pytest.param(b"MZ\x90\x00" + bytes(60) + b"PE\x00\x00" + bytes(200), "Windows executable"),
    pytest.param(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0", "MIDI", id="midi"),
    pytest.param(random_bytes(5000), "not in a recognised audio format", id="random"),
    pytest.param(bytes(5000), "not in a recognised audio format", id="zeros"),
]


@pytest.mark.parametrize(("data", "reason"), NOT_AUDIO)
def test_what_is_not_audio_is_refused_with_415_naming_what_it_is(
    write: Write, data: bytes, reason: str
) -> None:
    assert sniff(data[:64]) is None

    with pytest.raises(UnsupportedAudio) as caught:
        inspect_file(write(data))

    assert type(caught.value) is UnsupportedAudio
    assert (caught.value.status, caught.value.code) == (415, "not_audio")
    assert reason in caught.value.detail


def test_not_audio_behind_an_id3_tag_is_still_named(write: Write) -> None:
    with pytest.raises(UnsupportedAudio, match="PNG image"):
        inspect_file(write(id3_tag() + image("PNG")))


# -- audio in a format that is not accepted: 415 unsupported_audio_format --------------------

OTHER_AUDIO = [
    pytest.param(fixture("sine.mp2"), "MP2", id="mp2"),
    pytest.param(b"\xff\xf1\x50\x80\x02\x1f\xfc" + random_bytes(2000), "raw AAC", id="adts"),
    pytest.param(
        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c" + bytes(100),
        "Windows Media",
        id="wma",
    ),
    pytest.param(b"\x1a\x45\xdf\xa3" + bytes(100), "Matroska/WebM", id="webm"),
    pytest.param(b"RF64\xff\xff\xff\xffWAVEds64" + bytes(100), "RF64", id="rf64"),
    pytest.param(
        b"OggS\x00\x02" + bytes(20) + b"\x01\x13\x7fFLAC\x01\x00" + bytes(40),
        "Ogg FLAC",
        id="ogg-flac",
    ),
]


@pytest.mark.parametrize(("data", "name"), OTHER_AUDIO)
def test_audio_in_other_formats_is_refused_with_415_naming_the_format(
    write: Write, data: bytes, name: str
) -> None:
    with pytest.raises(UnsupportedAudioFormat) as caught:
        inspect_file(write(data))

    assert (caught.value.status, caught.value.code) == (415, "unsupported_audio_format")
    assert name in caught.value.detail
    assert "FLAC" in caught.value.detail  # it says what to upload instead


# -- truncated or corrupt: 422 invalid_audio --------------------------------------------------


def cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


TRUNCATED = [
    pytest.param(lambda: cut(make_wav(0.5), 0.6), "WAV file is truncated", id="wav-mid-data"),
    pytest.param(lambda: make_wav(0.5)[:-1], "WAV file is truncated", id="wav-last-byte"),
    pytest.param(lambda: make_wav(0.5)[:44], "WAV file is truncated", id="wav-header-only"),
    pytest.param(lambda: make_wav(0.5)[:30], "WAV", id="wav-mid-header"),
    pytest.param(lambda: cut(fixture("sine.flac"), 0.5), "FLAC file is truncated", id="flac"),
    pytest.param(lambda: fixture("sine.flac")[:-1], "FLAC file is truncated", id="flac-last"),
    pytest.param(lambda: fixture("sine.flac")[:100], "FLAC", id="flac-metadata-only"),
    pytest.param(lambda: cut(fixture("sine.aiff"), 0.7), "AIFF file is truncated", id="aiff"),
    pytest.param(lambda: cut(fixture("sine.mp3"), 0.5), "MP3 file is truncated", id="mp3"),
    pytest.param(lambda: cut(fixture("sine.m4a"), 0.8), "M4A file is truncated", id="m4a"),
    pytest.param(lambda: cut(fixture("sine.ogg"), 0.9), "Vorbis file is truncated", id="ogg"),
    pytest.param(lambda: cut(fixture("sine.opus"), 0.9), "Opus file is truncated", id="opus"),
]


@pytest.mark.parametrize(("source", "reason"), TRUNCATED)
def test_truncated_files_are_refused_with_422(
    write: Write, source: Callable[[], bytes], reason: str
) -> None:
    with pytest.raises(InvalidAudio) as caught:
        inspect_file(write(source()))

    assert (caught.value.status, caught.value.code) == (422, "invalid_audio")
    assert reason in caught.value.detail


CORRUPT = [
    pytest.param(b"RIFF\x00\x10\x00\x00WAVE" + random_bytes(4000), id="wav-random"),
    pytest.param(b"fLaC" + random_bytes(4000), id="flac-random"),
    pytest.param(b"FORM\x00\x00\x10\x00AIFF" + random_bytes(4000), id="aiff-random"),
    pytest.param(b"\xff\xfb\x90\x00" + random_bytes(4000), id="mp3-random"),
    pytest.param(id3_tag() + random_bytes(4000, seed=1), id="id3-random"),
    pytest.param(id3_tag(), id="id3-only"),
    pytest.param(b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + random_bytes(4000)),
    pytest.param(fixture("sine.opus")[:200] + random_bytes(2000), id="opus-random"),
    pytest.param(make_wav(0), id="wav-no-frames"),
]


@pytest.mark.parametrize("data", CORRUPT)
def test_corrupt_files_of_an_accepted_format_are_refused_with_422(
    write: Write, data: bytes
) -> None:
    assert sniff(data[:64]) is not None

    with pytest.raises(InvalidAudio) as caught:
        inspect_file(write(data))

    assert (caught.value.status, caught.value.code) == (422, "invalid_audio")
    assert caught.value.detail


def test_a_damaged_last_flac_frame_is_refused(write: Write) -> None:
    data = bytearray(fixture("sine.flac"))
    data[-100] ^= 0x55  # inside the last frame: its CRC-16 no longer matches

    with pytest.raises(InvalidAudio, match="does not end with a complete frame"):
        inspect_file(write(bytes(data)))


def test_trailing_tags_after_flac_audio_are_allowed(write: Write) -> None:
    id3v1 = b"TAG" + b"Title".ljust(30, b"\x00") + bytes(95)

    assert inspect_file(write(fixture("sine.flac") + id3v1)).format == "flac"


def test_a_zero_duration_is_refused(write: Write) -> None:
    with pytest.raises(InvalidAudio, match="no audio"):
        inspect_file(write(make_wav(0)))


# -- robustness ---------------------------------------------------------------------------

PREFIXES = [
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"fLaC\x00\x00\x00\x22",
    b"FORM\x00\x00\x00\x00AIFFCOMM",
    b"FORM\x00\x00\x00\x00AIFC",
    b"ID3\x04\x00\x10\x00\x00\x00\x7f",
    b"\xff\xfb\x90\x64\x00\x00\x00\x00",
    b"\xff\xf1\x50\x80",
    b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00",
    b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x01\x13OpusHead",
    b"\x89PNG\r\n\x1a\n",
    b"\xff" * 16,
    b"\x00" * 16,
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sniff_never_raises_on_short_input(prefix: bytes) -> None:
    for length in range(17):
        result = sniff(prefix[:length])
        assert result is None or result in MIME_TYPES
    for seed in range(300):
        noise = random.Random(seed).randbytes(seed % 17)
        result = sniff(noise)
        assert result is None or result in MIME_TYPES


def test_sniff_answers_none_for_a_bare_signature() -> None:
    assert sniff(b"") is None
    assert sniff(b"RIFF") is None
    assert sniff(b"OggS") is None  # not yet known to be Vorbis or Opus
    assert sniff(b"fLaC") == "flac"


FIXTURE_FILES = ["sine.flac", "sine.aiff", "sine.aifc", "sine.m4a", "sine.ogg", "sine.opus"]


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_truncation_of_a_fixture_is_refused(write: Write, name: str) -> None:
    data = fixture(name)
    lengths = sorted({*range(80), *range(80, len(data), max(1, len(data) // 150))})
    for length in lengths:
        with pytest.raises((UnsupportedAudio, InvalidAudio)):
            inspect_file(write(data[:length]))


def test_mp3_cut_short_is_refused(write: Write) -> None:
    """MP3 is checked against its Info header's frame count, with a little slack for the
    encoder's padding: every cut below three quarters of the file is caught."""
    data = fixture("sine.mp3")
    for length in range(0, 3 * len(data) // 4, 7):
        with pytest.raises((UnsupportedAudio, InvalidAudio)):
            inspect_file(write(data[:length]))


@pytest.mark.parametrize("name", [*FIXTURE_FILES, "sine.mp3", "sine.mp2"])
def test_damaged_files_raise_only_problems(write: Write, name: str) -> None:
    """Flipped bytes anywhere: the answer is an `AudioInfo` or a problem, never a crash."""
    data = fixture(name)
    rng = random.Random(name)
    statuses: set[int] = set()
    for _ in range(150):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            info = inspect_file(write(bytes(damaged)))
        except ProblemError as problem:
            statuses.add(problem.status)
        else:
            assert info.format in MIME_TYPES
            assert 0 < info.duration_seconds < 60
    assert statuses <= {415, 422}
