"""Schemathesis hooks for the run over Backline's document (`hooks` in schemathesis.toml).

Schemathesis sends `format: binary` bodies only for media types it has a serializer for; the
audio upload takes the audio types as raw bytes, like `application/octet-stream`.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from backline.tracks.upload_docs import AUDIO_TYPES


@schemathesis.serializer(*AUDIO_TYPES)
def raw_audio(ctx: Any, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = value.encode()
    return {"data": bytes(value)}
