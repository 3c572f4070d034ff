"""Upload state: who may write a track's audio now, and the steps of a direct upload.

Two ways in, one track at a time (see `models` for the states):

* a streamed `PUT .../audio` first `claim`s the track in a short transaction, then streams with
  no transaction open, renewing its claim while bytes arrive (`renew`), and `finish`es in a
  second one, which holds only if its claim still does: a second upload started meanwhile is
  refused with 409 `upload_in_progress`, never interleaved. A refused or failed one is told
  so in its response, and `release` puts the track back as it was (a pending direct upload it
  displaced stays void);
* a direct upload is `start`ed (a presigned URL for `upload/<key>`), `complete`d by the client
  (the object must exist with the declared size), then checked by a worker (`verification`):
  read back into the server's own `audio/<key>`, re-hashed and validated as audio before the
  track counts as uploaded.

Functions take a session and never commit. A direct upload's failure ends in `failed` with a
stable `upload_error` code (its client learns it by reading the track), and every object a
failed or superseded upload left is listed for the caller to delete once the change is
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.db import utcnow
from backline.errors import Conflict, Unprocessable
from backline.logging import get_logger
from backline.storage.base import Storage
from backline.storage.keys import new_key
from backline.tracks.models import BUSY, Track, UploadState
from backline.tracks.service import ensure_editable

log = get_logger(__name__)

RECEIVING_LEASE = timedelta(minutes=5)  # renewed every RENEW_EVERY while the claim is held
RENEW_EVERY = 60.0  # seconds
URL_LIFETIME = timedelta(minutes=15)  # a presigned upload URL
COMPLETE_GRACE = timedelta(minutes=15)  # after the URL lapses, `complete` is still accepted
VERIFY_LEASE = timedelta(minutes=15)  # a worker's hold on one verification


class UploadBusy(Conflict):
    code = "upload_in_progress"


class UploadNotPending(Conflict):
    code = "upload_not_pending"


class UploadMissing(Conflict):
    code = "upload_missing"


class UploadExpired(Conflict):
    code = "upload_expired"


class UploadSizeMismatch(Unprocessable):
    code = "upload_size_mismatch"


def _busy(track: Track, now: datetime) -> bool:
    """A verification holds the track until the verifier ends it; a streamed upload holds it
    while its lease is renewed (a lapsed one is swept by the verifier)."""
    if track.upload_state == UploadState.VERIFYING.value:
        return True
    return (
        track.upload_state in BUSY
        and track.upload_expires_at is not None
        and track.upload_expires_at > now
    )


def _clear(track: Track, state: UploadState | None, error: str | None = None) -> list[str]:
    """Leave the upload columns describing a finished attempt; returns the pending object."""
    leftover = [track.upload_key] if track.upload_key else []
    track.upload_state = state.value if state else None
    track.upload_error = error
    track.upload_token = None
    track.upload_expires_at = None
    track.upload_key = None
    track.upload_backend = None
    track.upload_size = None
    track.upload_sha256 = None
    track.upload_content_type = None
    return leftover


def _refuse_if_busy(track: Track, now: datetime) -> None:
    ensure_editable(track)
    if _busy(track, now):
        raise UploadBusy(
            "Another upload to this track is under way; try again when it has finished.",
            state=track.upload_state,
        )


# -- streamed PUT ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    previous_state: str | None
    previous_error: str | None
    previous_updated_at: datetime


def claim(track: Track, *, now: datetime | None = None) -> tuple[Claim, list[str]]:
    """Hold the track for one streamed upload; returns the claim and objects to delete."""
    now = now or utcnow()
    _refuse_if_busy(track, now)
    held = Claim(uuid.uuid4(), track.upload_state, track.upload_error, track.updated_at)
    leftover = _clear(track, UploadState.RECEIVING)  # a direct upload never completed
    track.upload_token = held.token
    track.upload_expires_at = now + RECEIVING_LEASE
    return held, leftover


async def renew(
    session: AsyncSession,
    *,
    track_id: uuid.UUID,
    token: uuid.UUID,
    lease: timedelta | None = None,
) -> bool:
    """Extend a claim (or a verifier's lease) still held; False when it is not."""
    result = await session.execute(
        update(Track)
        .where(Track.id == track_id, Track.upload_token == token)
        .values(
            upload_expires_at=utcnow() + (lease or RECEIVING_LEASE), updated_at=Track.updated_at
        )
    )
    return bool(getattr(result, "rowcount", 0))


@asynccontextmanager
async def holding(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    track_id: uuid.UUID,
    token: uuid.UUID,
    lease: timedelta | None = None,
) -> AsyncIterator[None]:
    """Renew a claim every RENEW_EVERY seconds for as long as the block runs: the receiving,
    checking and storing of a large file can take longer than one lease. Each renewal is a
    transaction of its own, the only one here that commits."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                async with sessionmaker() as session, session.begin():
                    await renew(session, track_id=track_id, token=token, lease=lease)
            except Exception:  # the next beat tries again; a lapsed claim is refused at the end
                log.warning("upload_claim_renewal_failed", track_id=str(track_id))

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def holds(track: Track, token: uuid.UUID) -> bool:
    return track.upload_token == token and track.upload_state == UploadState.RECEIVING.value


def finish(track: Track, *, token: uuid.UUID) -> None:
    """The claim's upload is stored: the track's audio is ready (attach it first)."""
    if not holds(track, token):
        raise UploadBusy("Another upload to this track took its place.")
    _clear(track, UploadState.READY)


def release(track: Track, held: Claim) -> None:
    """A streamed upload failed (its client was told why): put the state back as it was."""
    if track.upload_token != held.token:
        return
    _clear(track, None)
    if held.previous_state in (UploadState.READY.value, UploadState.FAILED.value):
        track.upload_state = held.previous_state  # a pending one's URL or claim is void now
        track.upload_error = held.previous_error
    track.updated_at = held.previous_updated_at


def verified(track: Track) -> list[str]:
    """A direct upload passed its checks (attach it first); returns the pending object."""
    return _clear(track, UploadState.READY)


def fail(track: Track, *, token: uuid.UUID | None, error: str) -> list[str]:
    """Record a failed attempt, if `token` (None: any) still holds the track."""
    if token is not None and track.upload_token != token:
        return []
    return _clear(track, UploadState.FAILED, error)


# -- direct upload -----------------------------------------------------------------------


def start(
    track: Track,
    *,
    storage: Storage,
    size: int,
    sha256: str,
    content_type: str,
    now: datetime | None = None,
) -> list[str]:
    """Begin a direct upload to a new `upload/` key; returns objects to delete."""
    now = now or utcnow()
    _refuse_if_busy(track, now)
    leftover = _clear(track, UploadState.AWAITING_UPLOAD)
    track.upload_token = uuid.uuid4()
    track.upload_expires_at = now + URL_LIFETIME
    track.upload_key = new_key("upload")
    track.upload_backend = storage.name
    track.upload_size = size
    track.upload_sha256 = sha256
    track.upload_content_type = content_type
    return leftover


async def complete(track: Track, *, storage: Storage, now: datetime | None = None) -> None:
    """The client says the object is up: check it is there, whole, then hand it to a worker.

    A refused complete changes nothing: the client may finish or redo the transfer while the
    URL lasts and complete again; a pending upload never completed is swept by the worker.
    """
    now = now or utcnow()
    ensure_editable(track)
    if track.upload_state != UploadState.AWAITING_UPLOAD.value or track.upload_key is None:
        raise UploadNotPending(
            "There is no direct upload waiting to be completed.", state=track.upload_state
        )
    assert track.upload_expires_at is not None
    if track.upload_expires_at + COMPLETE_GRACE < now:
        raise UploadExpired("The upload URL has expired; ask for a new one.")
    size = await storage.size(track.upload_key)
    if size is None:
        raise UploadMissing("Nothing has been uploaded to the URL yet.")
    if size != track.upload_size:
        raise UploadSizeMismatch(
            f"The uploaded object is {size} bytes, not the {track.upload_size} declared."
        )
    track.upload_state = UploadState.VERIFYING.value
    track.upload_token = uuid.uuid4()
    track.upload_expires_at = now  # due at once
