"""The upload verifier: the background job that makes a direct upload count.

Runs beside the outbox worker (inline in `backline serve` in development, else in
`backline worker`). Each round, in one short transaction, it takes the verifications that are
due (`FOR UPDATE SKIP LOCKED`, with a lease, so several workers share the work and a dead one's
job is taken again), and sweeps uploads that lapsed: a URL never completed (its object, if any,
is deleted) or a streamed upload whose server went away.

A verification first copies `upload/<key>` to a fresh `audio/<key>` inside the store, so the
bytes checked are bytes no client can still write to, then reads that copy back through a
temporary file, re-hashing it against the declared SHA-256 and size, and validates it as audio.
Only then, and only if the upload still holds the track, does the track point at it. A store
that is down leaves the job for a later round; every other failure ends the upload `failed`
with the problem's code (`digest_mismatch`, `not_audio`, `invalid_audio`...).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.config import Settings
from backline.db import utcnow
from backline.errors import ProblemError
from backline.logging import get_logger
from backline.metrics.recording import count_upload
from backline.storage import Storages
from backline.storage.base import DigestMismatch, StorageUnavailable, StoredObject
from backline.storage.keys import new_key
from backline.tracks import audio, uploading, uploads
from backline.tracks import service as tracks
from backline.tracks.models import Track, UploadState

log = get_logger(__name__)

ObjectRef = tuple[str | None, str]  # (backend, key)


@dataclass(frozen=True)
class Job:
    track_id: uuid.UUID
    token: uuid.UUID
    key: str
    backend: str | None
    size: int
    sha256: str
    content_type: str


async def discard(storages: Storages, objects: Iterable[ObjectRef]) -> None:
    """Delete objects nothing points at any more; a failure is logged, never raised."""
    for backend, key in objects:
        try:
            await storages[backend].delete(key)
        except Exception:
            log.warning("object_delete_failed", key=key, backend=backend)


class Verifier:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        storages: Storages,
        *,
        batch_size: int = 4,
        poll_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.storages = storages
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.wake = asyncio.Event()  # set by `complete` in this process: no need to wait a poll

    async def run_once(self) -> int:
        """Sweep lapsed uploads, then verify up to a batch, one job at a time; returns how many
        were verified."""
        await self.sweep()
        verified = 0
        while verified < self.batch_size and (job := await self.claim()) is not None:
            async with uploading.holding(
                self.sessionmaker,
                track_id=job.track_id,
                token=job.token,
                lease=uploading.VERIFY_LEASE,
            ):
                await self.verify(job)
            verified += 1
        return verified

    async def sweep(self) -> None:
        now = utcnow()
        leftovers: list[ObjectRef] = []
        async with self.sessionmaker() as session, session.begin():
            lapsed = await session.scalars(
                select(Track)
                .where(
                    or_(
                        and_(
                            Track.upload_state == UploadState.AWAITING_UPLOAD.value,
                            Track.upload_expires_at < now - uploading.COMPLETE_GRACE,
                        ),
                        and_(
                            Track.upload_state == UploadState.RECEIVING.value,
                            Track.upload_expires_at < now,
                        ),
                    )
                )
                .with_for_update(skip_locked=True)
            )
            for track in lapsed:
                expired = track.upload_state == UploadState.AWAITING_UPLOAD.value
                error = uploading.UploadExpired.code if expired else "upload_interrupted"
                backend = track.upload_backend
                leftovers += [
                    (backend, key) for key in uploading.fail(track, token=None, error=error)
                ]
        await discard(self.storages, leftovers)

    async def claim(self) -> Job | None:
        """Take the verification due longest, under a lease of this worker's."""
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            track = await session.scalar(
                select(Track)
                .where(
                    Track.upload_state == UploadState.VERIFYING.value,
                    Track.upload_expires_at <= now,
                )
                .order_by(Track.upload_expires_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if track is None:
                return None
            token = uuid.uuid4()
            track.upload_token = token
            track.upload_expires_at = now + uploading.VERIFY_LEASE
            assert track.upload_key is not None
            assert track.upload_size is not None
            assert track.upload_sha256 is not None
            return Job(
                track_id=track.id,
                token=token,
                key=track.upload_key,
                backend=track.upload_backend,
                size=track.upload_size,
                sha256=track.upload_sha256,
                content_type=track.upload_content_type or "application/octet-stream",
            )

    async def drain(self) -> int:
        total = 0
        while verified := await self.run_once():
            total += verified
        return total

    async def run(self, stop: asyncio.Event) -> None:
        log.info("upload_verifier_started")
        pause = self.poll_interval
        while not stop.is_set():
            try:
                verified = await self.run_once()
                pause = self.poll_interval
            except Exception:
                log.exception("upload_verifier_round_failed")
                verified = 0
                pause = min(pause * 2, 30.0)
            if verified == 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        waiters = {asyncio.ensure_future(stop.wait())}
                        waiters.add(asyncio.ensure_future(self.wake.wait()))
                        try:
                            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for waiter in waiters:
                                waiter.cancel()
        log.info("upload_verifier_stopped")

    async def verify(self, job: Job) -> None:
        storage = self.storages[job.backend]
        final = new_key("audio")
        failure: ProblemError | None = None
        info: audio.AudioInfo | None = None
        try:
            await storage.copy(job.key, final, content_type=job.content_type)
            info = await self._check(job, storage.read(final))
        except StorageUnavailable:
            log.warning("upload_verification_deferred", track_id=str(job.track_id))
            await discard(self.storages, [(storage.name, final)])
            return  # the lease runs out and another round tries again
        except ProblemError as exc:
            failure = exc
        except Exception:
            log.exception("upload_verification_error", track_id=str(job.track_id))
            failure = ProblemError("The upload could not be checked.", code="verification_failed")
        except BaseException:  # cancelled (a shutdown): the copy goes, the lease runs out
            with anyio.CancelScope(shield=True):
                await discard(self.storages, [(storage.name, final)])
            raise
        with anyio.CancelScope(shield=True):  # the checked copy is recorded, or removed
            leftovers = await self._record(job, storage.name, final, failure, info)
        await discard(self.storages, leftovers)

    async def _record(
        self,
        job: Job,
        backend: str,
        final: str,
        failure: ProblemError | None,
        info: audio.AudioInfo | None,
    ) -> list[ObjectRef]:
        leftovers: list[ObjectRef] = []
        async with self.sessionmaker() as session, session.begin():
            track = await session.get(Track, job.track_id, with_for_update=True)
            if track is None or track.upload_token != job.token:
                leftovers.append((backend, final))  # deleted or superseded meanwhile
            elif failure is not None or info is None:
                code = failure.code if failure is not None else "verification_failed"
                outcome = "failed" if code == "verification_failed" else "rejected"
                count_upload(kind="audio", via="direct", outcome=outcome)
                leftovers += [(backend, final)]
                leftovers += [
                    (job.backend, k) for k in uploading.fail(track, token=None, error=code)
                ]
                log.info("upload_failed", track_id=str(job.track_id), error=code)
            else:
                stored = StoredObject(key=final, size=job.size, sha256=job.sha256)
                replaced = tracks.attach_audio(
                    track, stored=stored, info=info, backend=backend, check_editable=False
                )
                leftovers += [(job.backend, k) for k in uploading.verified(track)]
                count_upload(kind="audio", via="direct", outcome="stored", size=job.size)
                if replaced is not None:
                    leftovers.append(replaced)
                log.info("upload_verified", track_id=str(job.track_id), format=info.format)
        return leftovers

    async def _check(self, job: Job, stream: AsyncIterator[bytes]) -> audio.AudioInfo:
        """Spool the copy to a temporary file, re-hashing it; then validate it as audio."""
        path, hasher = await uploads.spool_stream(
            stream, directory=uploads.spool_directory(self.settings.var_dir), max_size=job.size
        )
        try:
            if hasher.size != job.size:
                raise uploading.UploadSizeMismatch("The object changed size after completion.")
            if hasher.hexdigest != job.sha256:
                raise DigestMismatch("The uploaded bytes do not match the declared SHA-256.")
            return await anyio.to_thread.run_sync(audio.inspect_file, path)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.Path(path).unlink(missing_ok=True)
