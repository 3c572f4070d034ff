"""Encryption of data at rest: AES-256-GCM under a key ring (`BACKLINE_ENCRYPTION_KEYS`).

The ring is written as comma-separated `id:key` entries, each key 32 random bytes in URL-safe
base64 (`backline keys generate` makes one). The first entry encrypts; every entry decrypts, so
a new key goes first and the old ones stay until `backline keys rotate` has re-encrypted every
value under the new one.

A stored value (a "sealed" value) is

    version (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext+tag

and its associated data binds the header with the table, column and row ID it belongs to: a
value copied into another row or column, or altered in any byte, does not decrypt. A value that
does not decrypt raises `Undecryptable` (a 503 problem with code `undecryptable`, never garbage
data) and logs the alert `ciphertext_rejected` naming the table, column and row, never the
value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backline.errors import ServiceUnavailable
from backline.logging import get_logger

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
log = get_logger(__name__)


class KeyRingError(ValueError):
    """The ring's text is not a list of `id:key` entries; the message never quotes a key."""


class Undecryptable(ServiceUnavailable):
    """A stored value that does not decrypt: altered, moved, or under a key no longer held."""

    code = "undecryptable"

    def __init__(self, *, table: str, column: str, row_id: object, reason: str) -> None:
        super().__init__(
            "Stored data could not be read back safely; the operators have been alerted."
        )
        self.table, self.column, self.row_id, self.reason = table, column, str(row_id), reason


@dataclass(frozen=True)
class Key:
    id: str
    aead: AESGCM


def _decode_key(text: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


class KeyRing:
    """The keys that decrypt, the first of which (`primary`) encrypts."""

    def __init__(self, keys: list[Key]) -> None:
        if not keys:
            raise KeyRingError("the key ring is empty")
        self.keys = {key.id: key for key in keys}
        self.primary = keys[0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        keys: list[Key] = []
        entries = [e.strip() for e in text.split(",") if e.strip()]
        for position, entry in enumerate(entries, start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise KeyRingError(
                    f"entry {position} is not id:key (the id being 1-32 of A-Z a-z 0-9 . _ -)"
                )
            raw = _decode_key(encoded.strip())
            if raw is None:
                raise KeyRingError(
                    f"key {key_id!r} is not 32 bytes in URL-safe base64 "
                    "(make one with `backline keys generate`)"
                )
            if any(k.id == key_id for k in keys):
                raise KeyRingError(f"key id {key_id!r} appears twice")
            keys.append(Key(key_id, AESGCM(raw)))
        return cls(keys)

    def seal(self, plaintext: str, *, table: str, column: str, row_id: object) -> bytes:
        """Encrypt `plaintext` for one cell under the primary key, with a fresh random nonce."""
        header = _header(self.primary.id)
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated(header, table, column, row_id)
        return header + nonce + self.primary.aead.encrypt(nonce, plaintext.encode(), aad)

    def open(self, sealed: bytes, *, table: str, column: str, row_id: object) -> str:
        """Decrypt one cell; `Undecryptable` (and an alert in the log) when it does not."""
        try:
            key_id, body_at = parse_header(sealed)
        except ValueError as exc:
            raise self._rejected(table, column, row_id, str(exc)) from None
        key = self.keys.get(key_id)
        if key is None:
            raise self._rejected(table, column, row_id, f"key {key_id!r} is not in the ring")
        nonce, body = sealed[body_at : body_at + NONCE_BYTES], sealed[body_at + NONCE_BYTES :]
        aad = _associated(sealed[:body_at], table, column, row_id)
        try:
            return key.aead.decrypt(nonce, body, aad).decode()
        except (InvalidTag, ValueError):
            raise self._rejected(table, column, row_id, "authentication failed") from None

    def is_current(self, sealed: bytes) -> bool:
        """Whether `sealed` is under the primary key (what rotation leaves alone)."""
        try:
            return parse_header(sealed)[0] == self.primary.id
        except ValueError:
            return False

    @staticmethod
    def _rejected(table: str, column: str, row_id: object, reason: str) -> Undecryptable:
        log.error("ciphertext_rejected", table=table, column=column, row_id=str(row_id), why=reason)
        return Undecryptable(table=table, column=column, row_id=row_id, reason=reason)


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((VERSION, len(encoded))) + encoded


def parse_header(sealed: bytes) -> tuple[str, int]:
    """The key ID of a sealed value and where its nonce starts; ValueError if malformed."""
    if len(sealed) < 2 or sealed[0] != VERSION:
        raise ValueError("unknown format version")
    end = 2 + sealed[1]
    if len(sealed) < end + NONCE_BYTES + 16:
        raise ValueError("too short")
    try:
        return sealed[2:end].decode("ascii"), end
    except UnicodeDecodeError:
        raise ValueError("malformed key id") from None


def key_id_of(sealed: bytes) -> str | None:
    try:
        return parse_header(sealed)[0]
    except ValueError:
        return None


def _associated(header: bytes, table: str, column: str, row_id: object) -> bytes:
    row = row_id.hex if isinstance(row_id, uuid.UUID) else str(row_id)
    return b"\x00".join((header, table.encode(), column.encode(), row.encode()))


def generate_entry(now: datetime | None = None) -> str:
    """A new ring entry: a date-based ID with a random suffix, and 32 random bytes."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d")
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")
    return f"k{stamp}-{secrets.token_hex(2)}:{key}"
