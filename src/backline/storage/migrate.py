"""`backline storage migrate --to s3`: move every object to another backend, one at a time.

For each object a row holds elsewhere, in order:

1. stream it from its backend into the target under the same key, hashing it on the way and
   sending each part's SHA-256 for the store to check; a source whose bytes no longer match
   the recorded SHA-256 is reported as damaged and not moved (`storage verify` tells more);
2. read the target's copy back and re-hash it: a store may accept a wrong checksum, so the copy
   is trusted only when its own bytes match;
3. switch the row to the target in a short transaction of its own, only if the row still
   points at that key on that backend (a track replaced or deleted meanwhile is left alone,
   and the copy it no longer needs is removed);
4. delete the source copy, unless told to keep it.

Two runs at once do no harm: a row already switched by the other is left as it is, with its
copy.

Stopped anywhere, the row still points at a complete object: before step 3 at the source,
after it at the verified target. Run again, it resumes: rows already on the target are
skipped, and a copy left half-way is overwritten. The app keeps serving throughout, since each
row names the backend that holds its object.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.storage import Storages
from backline.storage.base import DigestMismatch, Storage, TooLarge
from backline.storage.verify import read_back
from backline.tracks.models import Track

_COLUMNS = {
    "audio": (Track.audio_backend, Track.audio_key, Track.audio_sha256, Track.audio_size),
    "artwork": (Track.artwork_backend, Track.artwork_key, Track.artwork_sha256, Track.artwork_size),
}


@dataclass(frozen=True)
class Movable:
    track_id: uuid.UUID
    kind: str  # "audio" | "artwork"
    backend: str | None  # as the row names it; None is the primary backend
    key: str
    sha256: str
    size: int


@dataclass
class Report:
    moved: int = 0
    damaged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # the row moved on meanwhile

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing


async def pending(session: AsyncSession, *, target: str, primary: str) -> list[Movable]:
    """Every object not yet on `target`. A row naming no backend is on the primary one."""
    found: list[Movable] = []
    for kind, (backend, key, digest, size) in _COLUMNS.items():
        rows = await session.execute(
            select(Track.id, backend, key, digest, size).where(key.is_not(None)).order_by(Track.id)
        )
        for track_id, named, object_key, sha256, length in rows:
            if (named or primary) != target and object_key and sha256:
                found.append(Movable(track_id, kind, named, object_key, sha256, length or 0))
    return found


async def move(
    sessionmaker: async_sessionmaker[AsyncSession],
    storages: Storages,
    item: Movable,
    *,
    target: Storage,
    keep_source: bool,
    report: Report,
) -> None:
    source = storages[item.backend]
    if await source.size(item.key) is None:
        report.missing.append(item.key)
        return
    await target.put(
        item.key,
        source.read(item.key),
        content_type=mimetypes.guess_type(item.key)[0] or "application/octet-stream",
        max_size=item.size,
        expected_sha256=item.sha256,  # a damaged source is refused before the copy completes
    )
    if await read_back(target, item.key) != item.sha256:
        await target.delete(item.key)
        report.damaged.append(item.key)
        return
    backend, key, _, _ = _COLUMNS[item.kind]
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            update(Track)
            .where(Track.id == item.track_id, key == item.key)
            .where(backend == item.backend if item.backend is not None else backend.is_(None))
            .values({backend.key: target.name, "updated_at": Track.updated_at})
        )
        switched = bool(getattr(result, "rowcount", 0))
    if not switched:
        async with sessionmaker() as session:
            moved_by_another = await session.scalar(
                select(Track.id).where(key == item.key, backend == target.name)
            )
        if moved_by_another is not None:  # a second run switched it first: its copy is live
            return
        report.changed.append(item.key)
        await target.delete(item.key)
        return
    report.moved += 1
    if not keep_source:
        await source.delete(item.key)


async def migrate(
    sessionmaker: async_sessionmaker[AsyncSession],
    storages: Storages,
    items: list[Movable],
    *,
    target: str,
    keep_source: bool = False,
    progress: Callable[[], None],
) -> Report:
    report = Report()
    destination = storages[target]
    for item in items:
        try:
            await move(
                sessionmaker,
                storages,
                item,
                target=destination,
                keep_source=keep_source,
                report=report,
            )
        except (DigestMismatch, TooLarge):  # the source is not what was recorded
            report.damaged.append(item.key)
        progress()
    return report
