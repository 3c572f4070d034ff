"""The local backend: objects as files under one directory (the development default).

Every path is derived from a validated key (see `keys`) and checked to resolve inside the root;
files are opened without following symbolic links, so a link planted in the tree leads nowhere.
A write goes to a temporary file beside its target and is renamed into place only when complete
and verified: a reader never sees half an object, and an interrupted or refused write leaves
nothing. File work runs in worker threads.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

from backline.storage.base import CHUNK, Hasher, ObjectMissing, StoredObject, file_chunks
from backline.storage.keys import validate


class LocalStorage:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file of a key. Its folder must resolve inside the root; the file itself is
        never resolved, so that a symbolic link there is refused on open, not followed."""
        validate(key)
        root = self.root.resolve()
        target = root / key
        if not target.parent.resolve().is_relative_to(root):
            raise ValueError("key escapes the storage root")
        return target

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str,
        max_size: int,
        expected_sha256: str | None = None,
    ) -> StoredObject:
        target = self.path(key)
        await anyio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
        handle, temporary = await anyio.to_thread.run_sync(
            lambda: tempfile.mkstemp(dir=target.parent, prefix=".part-")
        )
        hasher = Hasher(max_size)
        try:
            with os.fdopen(handle, "wb") as file:
                async for chunk in chunks:
                    hasher.update(chunk)
                    await anyio.to_thread.run_sync(file.write, chunk)
                await anyio.to_thread.run_sync(file.flush)
                await anyio.to_thread.run_sync(os.fsync, file.fileno())
            hasher.verify(expected_sha256)
            await anyio.to_thread.run_sync(os.replace, temporary, target)
        except BaseException:
            await anyio.to_thread.run_sync(lambda: Path(temporary).unlink(missing_ok=True))
            raise
        return StoredObject(key=key, size=hasher.size, sha256=hasher.hexdigest)

    async def put_file(
        self, key: str, path: Path, *, content_type: str, size: int, sha256: str
    ) -> StoredObject:
        """Move the file into place: one rename on the same filesystem, not a second copy of
        every byte. Across filesystems it is copied through `put` instead."""
        target = self.path(key)

        def adopt() -> bool:
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(descriptor)  # durable before the row that points at it commits
            finally:
                os.close(descriptor)
            try:
                path.replace(target)
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    return False
                raise
            return True

        if not await anyio.to_thread.run_sync(adopt):
            return await self.put(
                key,
                file_chunks(path),
                content_type=content_type,
                max_size=size,
                expected_sha256=sha256,
            )
        return StoredObject(key=key, size=size, sha256=sha256)

    async def read(
        self, key: str, *, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        target = self.path(key)
        descriptor = await anyio.to_thread.run_sync(
            lambda: os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        )
        remaining = length
        with os.fdopen(descriptor, "rb") as file:
            if start:
                await anyio.to_thread.run_sync(file.seek, start)
            while remaining is None or remaining > 0:
                size = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await anyio.to_thread.run_sync(file.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def size(self, key: str) -> int | None:
        target = self.path(key)

        def stat() -> int | None:
            try:
                info = target.lstat()
            except FileNotFoundError:
                return None
            return info.st_size if stat_module.S_ISREG(info.st_mode) else None

        return await anyio.to_thread.run_sync(stat)

    async def delete(self, key: str) -> None:
        target = self.path(key)
        await anyio.to_thread.run_sync(lambda: target.unlink(missing_ok=True))

    async def copy(self, source: str, target: str, *, content_type: str) -> None:
        """A hard link: instant, and the target keeps these bytes even if the source is later
        replaced (a write replaces the file rather than changing it in place)."""
        source_path, target_path = self.path(source), self.path(target)

        def link() -> None:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(source_path, os.O_RDONLY | os.O_NOFOLLOW)  # no links followed
            except FileNotFoundError:
                raise ObjectMissing("The object is not in the store.") from None
            os.close(descriptor)
            os.link(source_path, target_path, follow_symlinks=False)

        await anyio.to_thread.run_sync(link)

    async def check(self) -> None:
        def probe() -> None:
            if not self.root.is_dir() or not os.access(self.root, os.W_OK):
                raise OSError("storage directory missing or not writable")

        await anyio.to_thread.run_sync(probe)
