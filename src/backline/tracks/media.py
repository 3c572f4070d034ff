"""Expiring, signed app links for the local storage backend: download, and direct upload.

S3 gives presigned URLs of its own; the local backend offers the same two through the app:

* `GET /media/<key>?expires=<unix time>&type=<content type>&sha256=<hex>&signature=<mac>`
  reads one object, served as `type`, with its recorded SHA-256 as ETag (byte ranges too: see
  `backline.storage.delivery`);
* `PUT /media/<key>?expires=<unix time>&size=<bytes>&signature=<mac>` writes one object, whose
  `Content-Type` and `x-amz-checksum-sha256` headers must be the ones signed, as S3 does it.

The mac is HMAC-SHA256 under the signing key over the method, the key and every signed value,
each field separated by NUL, so a link is good for minutes, for exactly one object and one use
of it, and no part of it can be altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode


def _mac(key_material: bytes, *fields: str) -> str:
    message = "\x00".join(("media", *fields)).encode()
    digest = hmac.new(key_material, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_path(
    key_material: bytes, object_key: str, *, seconds: int, content_type: str, sha256: str
) -> str:
    expires = int(time.time()) + seconds
    signature = _mac(key_material, "GET", object_key, str(expires), content_type, sha256)
    query = urlencode(
        {"expires": expires, "type": content_type, "sha256": sha256, "signature": signature}
    )
    return f"/media/{object_key}?{query}"


def valid(
    key_material: bytes,
    object_key: str,
    *,
    expires: int,
    content_type: str,
    sha256: str,
    signature: str,
) -> bool:
    if expires < time.time():
        return False
    expected = _mac(key_material, "GET", object_key, str(expires), content_type, sha256)
    return hmac.compare_digest(expected, signature)


def upload_path(
    key_material: bytes,
    object_key: str,
    *,
    seconds: int,
    size: int,
    sha256_b64: str,
    content_type: str,
) -> str:
    expires = int(time.time()) + seconds
    signature = _mac(
        key_material, "PUT", object_key, str(expires), str(size), sha256_b64, content_type
    )
    query = urlencode({"expires": expires, "size": size, "signature": signature})
    return f"/media/{object_key}?{query}"


def valid_upload(
    key_material: bytes,
    object_key: str,
    *,
    expires: int,
    size: int,
    sha256_b64: str,
    content_type: str,
    signature: str,
) -> bool:
    if expires < time.time():
        return False
    expected = _mac(
        key_material, "PUT", object_key, str(expires), str(size), sha256_b64, content_type
    )
    return hmac.compare_digest(expected, signature)
