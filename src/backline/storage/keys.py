"""Object keys. The server makes them; nothing a user sends ever becomes part of a path.

A key is `<kind>/<two hex>/<32 hex><.ext>`: random, so one object's key tells nothing of
another's, spread over 256 prefixes. `validate` accepts exactly that shape, so even a key read
back from the database cannot walk out of the storage root (`..`, `/etc`, NUL, unicode
look-alikes all fail the pattern).
"""

from __future__ import annotations

import re
import uuid

_KEY = re.compile(r"(audio|artwork|upload)/[0-9a-f]{2}/[0-9a-f]{32}(\.[a-z0-9]{1,5})?")
_EXTENSION = re.compile(r"[a-z0-9]{1,5}")


class InvalidKey(ValueError):
    pass


def new_key(kind: str, extension: str | None = None) -> str:
    token = uuid.uuid4().hex
    suffix = f".{extension}" if extension and _EXTENSION.fullmatch(extension) else ""
    key = f"{kind}/{token[:2]}/{token}{suffix}"
    return validate(key)


def validate(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidKey("not a storage key")
    return key
