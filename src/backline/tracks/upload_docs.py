"""What the upload routes take and answer, for the OpenAPI document (see `upload_routes`).

Their bodies are read by hand (streamed to disk, never parsed by FastAPI), so the request
bodies are declared here: the raw file with its media types and the optional `Content-Digest`
(RFC 9530), or a browser's multipart form. The problems listed are those of `_receive` and the
services it calls.
"""

from __future__ import annotations

from typing import Any

from backline.errors import NotFound
from backline.tracks.schemas import AUDIO_CONTENT_TYPES

BINARY = {"type": "string", "format": "binary"}
AUDIO_TYPES = sorted(set(AUDIO_CONTENT_TYPES))
ARTWORK_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
# One SHA-256 digest, base64: 43 characters and the padding.
CONTENT_DIGEST = {
    "name": "Content-Digest",
    "in": "header",
    "required": False,
    "description": "RFC 9530: `sha-256=:<base64>:`; a mismatch keeps nothing (422)",
    "schema": {"type": "string", "pattern": "^sha-256=:[A-Za-z0-9+/]{43}=:$"},
}


def raw_body(media_types: Any) -> dict[str, Any]:
    return {
        "parameters": [CONTENT_DIGEST],
        "requestBody": {
            "required": True,
            "description": "the file itself; its content, not its media type, decides",
            "content": {media_type: {"schema": BINARY} for media_type in media_types},
        },
    }


RAW_AUDIO = raw_body(AUDIO_TYPES)
RAW_ARTWORK = raw_body(ARTWORK_TYPES)
AUDIO_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": BINARY,
                        "sha256": {
                            "type": "string",
                            "pattern": "^([0-9a-fA-F]{64})?$",
                            "description": "the file's SHA-256, hex (optional)",
                        },
                    },
                }
            }
        },
    }
}

TRACK_EDIT = (NotFound, (409, "track_locked"), (409, "upload_in_progress"))
RECEIVED = (
    *TRACK_EDIT,
    (400, "invalid_digest"),
    (400, "client_disconnected"),
    (408, "upload_stalled"),
    (413, "payload_too_large"),
    (422, "digest_mismatch"),
    (503, "storage_unavailable"),
)
AUDIO = (
    (415, "not_audio"),
    (415, "unsupported_audio_format"),
    (422, "invalid_audio"),
)
ARTWORK = ((415, "not_artwork"), (422, "invalid_artwork"), (422, "artwork_too_large"))
FORM = ((400, "invalid_form"), (400, "missing_file"), (415, "unsupported_media_type"))
COMPLETED = (
    NotFound,
    (409, "upload_not_pending"),
    (409, "upload_missing"),
    (409, "upload_expired"),
    (422, "upload_size_mismatch"),
    (503, "storage_unavailable"),
)
