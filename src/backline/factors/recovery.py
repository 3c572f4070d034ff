"""Recovery codes: ten single-use codes for when the authenticator is lost.

A code is 12 characters from 31 letters and digits without look-alikes (no i, l, o, 0, 1),
shown as `xxxx-xxxx-xxxx`: about 59 random bits each. Typed codes are compared without case,
spaces or dashes.

What is stored is HMAC-SHA256 of the code under a key derived from BACKLINE_SECRET_KEY, not a
slow password hash. A slow hash exists to make guessing a weak secret expensive; these are not
weak (59 random bits, drawn here, never chosen by a person), and the key keeps even a stolen
table from being checked offline without it. A slow hash would cost tens of milliseconds per
stored code on every try (a salted slow hash cannot be looked up, so all ten are tried), where
the keyed hash makes a try one indexed query. The cost of the choice: a new
BACKLINE_SECRET_KEY voids the codes, as it ends every session; people then make new ones on
the security page, signing in with their authenticator.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 12
GROUP = 4
_DROPPED = str.maketrans("", "", " -")


def generate() -> list[str]:
    """`COUNT` new codes, formatted for reading."""
    codes = []
    for _ in range(COUNT):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        codes.append("-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP)))
    return codes


def normalize(code: str) -> str | None:
    """A typed code as stored-for-hashing (lower case, no spaces or dashes); None when it
    cannot be one."""
    raw = code.translate(_DROPPED).lower()
    if len(raw) != LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return raw


@lru_cache(maxsize=8)
def _key(signing_key: bytes) -> bytes:
    return hmac.new(signing_key, b"backline recovery codes", hashlib.sha256).digest()


def digest(signing_key: bytes, code: str) -> str | None:
    """What is stored of a code (hex HMAC-SHA256); None for text that cannot be a code."""
    raw = normalize(code)
    if raw is None:
        return None
    return hmac.new(_key(signing_key), raw.encode(), hashlib.sha256).hexdigest()
