"""Short-lived links to a track's audio: S3's presigned GET, or the app's signed `/media/` link
for the local backend (see `media`). The API's `audio-url` and the portal's players use them."""

from __future__ import annotations

from backline.config import Settings
from backline.storage import Storages
from backline.storage.s3 import S3Storage
from backline.tracks import media
from backline.tracks.audio import MIME_TYPES
from backline.tracks.models import Track

LINK_SECONDS = 300


async def audio_url(
    track: Track, *, storages: Storages, settings: Settings, seconds: int = LINK_SECONDS
) -> str:
    """A link to the track's audio, good for `seconds`; the track must have audio."""
    assert track.audio_key is not None
    storage = storages[track.audio_backend]
    content_type = MIME_TYPES.get(track.audio_format or "", "application/octet-stream")
    if isinstance(storage, S3Storage):
        return await storage.signed_get(track.audio_key, expires=seconds, content_type=content_type)
    path = media.signed_path(
        settings.signing_key,
        track.audio_key,
        seconds=seconds,
        content_type=content_type,
        sha256=track.audio_sha256 or "",
    )
    return f"{settings.public_url}{path}"
