"""`backline storage verify`: is every object still what was stored?

Every object a row points at is read back from the backend the row names and re-hashed; its
SHA-256 is compared with the one recorded when it was stored. Objects are read as streams, so
memory stays flat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.storage import Storages
from backline.storage.base import Storage
from backline.tracks.models import Track


@dataclass(frozen=True)
class Recorded:
    backend: str | None
    key: str
    sha256: str


@dataclass
class Report:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


async def recorded(session: AsyncSession) -> list[Recorded]:
    """Every object a row points at, with its backend and SHA-256."""
    found: list[Recorded] = []
    for backend_column, key_column, digest_column in (
        (Track.audio_backend, Track.audio_key, Track.audio_sha256),
        (Track.artwork_backend, Track.artwork_key, Track.artwork_sha256),
    ):
        rows = await session.execute(
            select(backend_column, key_column, digest_column)
            .where(key_column.is_not(None))
            .order_by(key_column)
        )
        found += [Recorded(backend, key, digest) for backend, key, digest in rows if key and digest]
    return found


async def read_back(storage: Storage, key: str) -> str:
    """The SHA-256 of the object as the store holds it now, read as a stream."""
    sha = hashlib.sha256()
    async for chunk in storage.read(key):
        sha.update(chunk)
    return sha.hexdigest()


async def sha256_of(storages: Storages, item: Recorded) -> str | None:
    """The object's SHA-256 as read back now; None when it is missing."""
    storage = storages[item.backend]
    if await storage.size(item.key) is None:
        return None
    return await read_back(storage, item.key)


async def verify(
    storages: Storages, objects: list[Recorded], *, progress: Callable[[], None]
) -> Report:
    report = Report()
    for item in objects:
        found = await sha256_of(storages, item)
        if found is None:
            report.missing.append(item.key)
        elif found != item.sha256:
            report.mismatched.append(item.key)
        report.checked += 1
        progress()
    return report
