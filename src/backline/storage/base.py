"""The storage interface, shared by every backend.

Writes stream: bytes go to the store as they arrive, SHA-256 is computed in the same pass, and
memory stays flat whatever the size. A write stops at the first byte over its cap
(`TooLarge`), and a write whose bytes do not match the digest the client declared
(`DigestMismatch`) leaves nothing behind: a backend keeps an object only once it is complete and
verified. Failures of the store itself are `StorageUnavailable` (503).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from backline.errors import Conflict, PayloadTooLarge, ServiceUnavailable, Unprocessable


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str  # hex


class TooLarge(PayloadTooLarge):
    """An object over its cap, refused at the first byte over."""


class DigestMismatch(Unprocessable):
    code = "digest_mismatch"


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"


class ObjectMissing(Conflict):
    """The store answered, and the object is not there."""

    code = "object_missing"


class Storage(Protocol):
    name: str  # "local" | "s3", as recorded on the rows whose objects it holds

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str,
        max_size: int,
        expected_sha256: str | None = None,
    ) -> StoredObject: ...

    async def put_file(
        self, key: str, path: Path, *, content_type: str, size: int, sha256: str
    ) -> StoredObject:
        """Store a complete local file already hashed as it arrived; it may be moved away."""
        ...

    def read(self, key: str, *, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The object's bytes from `start`, `length` of them (None: to the end)."""
        ...

    async def size(self, key: str) -> int | None: ...

    async def delete(self, key: str) -> None: ...

    async def copy(self, source: str, target: str, *, content_type: str) -> None:
        """Copy an object within the store; the source is left as it is."""
        ...

    async def check(self) -> None: ...


CHUNK = 1024 * 1024


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A local file's bytes, a chunk at a time."""
    async with await anyio.open_file(path, "rb") as file:
        while chunk := await file.read(CHUNK):
            yield chunk


class Hasher:
    """Counts and hashes bytes as they stream past, refusing the first byte over the cap."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self._sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_size:
            raise TooLarge(self.max_size)
        self._sha.update(chunk)

    @property
    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    @property
    def b64digest(self) -> str:
        return base64.b64encode(self._sha.digest()).decode()

    def verify(self, expected_sha256: str | None) -> None:
        if expected_sha256 is not None and expected_sha256.lower() != self.hexdigest:
            raise DigestMismatch("The bytes received do not match the declared SHA-256.")
