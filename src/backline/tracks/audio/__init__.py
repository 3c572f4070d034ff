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

formats.py     what is accepted, the plausibility limits, `AudioInfo`, the refusals
sniff.py       the format the first bytes say, and naming what a refused file is
inspection.py  `inspect_file`: sniff, parse with mutagen, check, describe
integrity.py   the completeness checks of each container
"""

from backline.tracks.audio.formats import (
    ACCEPTED,
    FORMATS,
    LABELS,
    MIME_TYPES,
    AudioInfo,
    InvalidAudio,
    UnsupportedAudio,
    UnsupportedAudioFormat,
)
from backline.tracks.audio.inspection import inspect_file
from backline.tracks.audio.sniff import sniff

__all__ = [
    "ACCEPTED",
    "FORMATS",
    "LABELS",
    "MIME_TYPES",
    "AudioInfo",
    "InvalidAudio",
    "UnsupportedAudio",
    "UnsupportedAudioFormat",
    "inspect_file",
    "sniff",
]
