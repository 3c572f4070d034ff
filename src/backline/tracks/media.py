"""Expiring, signed download links for the local storage backend.

S3 gives presigned URLs of its own; the local backend offers the same with an app URL,
`/media/<key>?expires=<unix time>&signature=<HMAC-SHA256(key, expires)>`, under the signing key.
A link is good for minutes, for exactly one object, and cannot be altered to name another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode


def _mac(key_material: bytes, object_key: str, expires: int) -> str:
    digest = hmac.new(
        key_material, f"media\x00{object_key}\x00{expires}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(key_material: bytes, object_key: str, *, seconds: int) -> str:
    expires = int(time.time()) + seconds
    query = urlencode({"expires": expires, "signature": _mac(key_material, object_key, expires)})
    return f"/media/{object_key}?{query}"


def valid(key_material: bytes, object_key: str, expires: int, signature: str) -> bool:
    if expires < time.time():
        return False
    return hmac.compare_digest(_mac(key_material, object_key, expires), signature)
