"""`backline storage verify`: is every object still what was stored?

Every object a row points at is read back and re-hashed; its SHA-256 is compared with the one
recorded when it was stored. Objects are read as streams, so memory stays flat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.storage.base import Storage
from backline.tracks.models import Track


@dataclass
class Report:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


async def recorded(session: AsyncSession) -> list[tuple[str, str]]:
    """(key, sha256) of every object a row points at."""
    found: list[tuple[str, str]] = []
    for key_column, digest_column in (
        (Track.audio_key, Track.audio_sha256),
        (Track.artwork_key, Track.artwork_sha256),
    ):
        rows = await session.execute(
            select(key_column, digest_column).where(key_column.is_not(None))
        )
        found += [(key, digest) for key, digest in rows if key and digest]
    return found


async def verify(
    storage: Storage, objects: list[tuple[str, str]], *, progress: Callable[[], None]
) -> Report:
    report = Report()
    for key, expected in objects:
        if await storage.size(key) is None:
            report.missing.append(key)
        else:
            sha = hashlib.sha256()
            async for chunk in storage.read(key):
                sha.update(chunk)
            if sha.hexdigest() != expected:
                report.mismatched.append(key)
        report.checked += 1
        progress()
    return report
