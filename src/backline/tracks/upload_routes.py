"""Upload endpoints: audio and artwork into object storage, streamed or direct.

* `PUT /api/tracks/{id}/audio` (raw body) and `POST /api/tracks/{id}/audio` (a browser's
  multipart form, field `file`) stream the file to a temporary file while hashing it, validate
  it, then store it; `PUT .../artwork` does the same for the cover image.
* `POST /api/tracks/{id}/upload-url` hands out a presigned PUT (S3) or a signed app URL
  (local, `PUT /media/...`) for the client to send the file straight to storage, and
  `POST /api/tracks/{id}/audio/complete` hands the object to the upload verifier.

These routes hold no database transaction while a body streams: they read the user, then
claim the track (`uploading`), each in a short transaction of its own, and record the outcome
in one more. A failed upload keeps nothing: the temporary file and any stored object are
removed, and the track records the failure's code.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import BackgroundTasks, Depends, Query, Request, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from backline.accounts.deps import DetachedUser
from backline.accounts.models import User
from backline.apidoc.declare import raises
from backline.config import Settings
from backline.deps import SessionDep, Sessions, SettingsDep, StoragesDep
from backline.errors import NotFound, ProblemError
from backline.logging import get_logger
from backline.metrics.recording import count_upload, upload_outcome
from backline.middleware.deadline import set_deadline
from backline.ratelimit.deps import RateLimit
from backline.routing import router
from backline.storage import Storages
from backline.storage.base import TooLarge
from backline.storage.keys import InvalidKey, new_key, validate
from backline.storage.s3 import S3Storage
from backline.tracks import artwork, audio, media, uploading, uploads
from backline.tracks import service as tracks
from backline.tracks import upload_docs as docs
from backline.tracks.models import Track, UploadState
from backline.tracks.schemas import (
    PRESIGNED_PUT_LIMIT,
    TrackPublic,
    UploadURLCreate,
    UploadURLPublic,
)
from backline.tracks.verifier import ObjectRef, discard

log = get_logger(__name__)
uploads_router = router(prefix="/api/tracks", tags=["tracks"])
signed_uploads_router = router(public=True, include_in_schema=False)

HARD_CEILING = 8 * 1024**3  # the route's own body cap; the configured one is checked as it streams


class UnsupportedForm(ProblemError):
    status, code = 415, "unsupported_media_type"


Spooler = Callable[..., Awaitable[tuple[Path, Any, str | None]]]


async def _raw(request: Request, **options: Any) -> tuple[Path, Any, str | None]:
    expected = uploads.declared_sha256(request)
    path, hasher = await uploads.spool(request, **options)
    return path, hasher, expected


async def _form(request: Request, **options: Any) -> tuple[Path, Any, str | None]:
    return await form_body(request, lambda fields: None, **options)


async def form_body(
    request: Request, check: Callable[[dict[str, str]], None], **options: Any
) -> tuple[Path, Any, str | None]:
    """A form's file, once `check` accepts the form's other fields (it raises if not)."""
    path, hasher, fields = await uploads.spool_form(request, **options)
    try:
        check(fields)
        return path, hasher, uploads.form_sha256(fields)
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Receiver:
    """What a streamed upload route works with, gathered once for the three of them."""

    request: Request
    user: User
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    storages: Storages


async def _receiver(
    request: Request,
    user: DetachedUser,
    sessions: Sessions,
    settings: SettingsDep,
    storages: StoragesDep,
) -> Receiver:
    return Receiver(request, user, sessions, settings, storages)


ReceiverDep = Annotated[Receiver, Depends(_receiver)]


async def receive(
    receiver: Receiver, *, track_id: uuid.UUID, spooler: Spooler, kind: str
) -> TrackPublic:
    """Claim the track, spool and check the body, store it, and point the track at it.

    `kind` is "audio" or "artwork"; `spooler` reads the body (raw, or a form: the portal's
    own upload forms come through here too)."""
    request, user, sessions = receiver.request, receiver.user, receiver.sessions
    settings, storages = receiver.settings, receiver.storages
    is_audio = kind == "audio"
    via = "form" if spooler is _form else "stream"
    max_size = settings.max_audio_bytes if is_audio else settings.max_artwork_bytes
    storage = storages.primary
    held: uploading.Claim | None = None
    leftovers: list[ObjectRef] = []
    async with sessions() as session, session.begin():
        track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
        if is_audio:
            stale_backend = track.upload_backend  # read before the claim clears it
            held, stale = uploading.claim(track)
            leftovers = [(stale_backend, key) for key in stale]
        else:
            tracks.ensure_editable(track)
    await discard(storages, leftovers)

    set_deadline(request, None)  # an upload is bounded by idle time instead (see `uploads`)
    key: str | None = None
    committed = False
    async with contextlib.AsyncExitStack() as stack:
        if held is not None:
            await stack.enter_async_context(
                uploading.holding(sessions, track_id=track_id, token=held.token)
            )
        try:
            path, hasher, expected = await spooler(
                request,
                directory=uploads.spool_directory(settings.var_dir),
                max_size=max_size,
                idle_timeout=settings.upload_timeout,
            )
            stack.push_async_callback(_unlink, path)
            hasher.verify(expected)
            info: audio.AudioInfo | artwork.ArtworkInfo
            if is_audio:
                info = await anyio.to_thread.run_sync(audio.inspect_file, path)
            else:
                checks = artwork.checks(settings.artwork_check_concurrency)
                info = await checks.inspect(
                    path, max_decoded_bytes=settings.max_artwork_decoded_bytes
                )
            key = new_key(kind, info.format)
            stored = await storage.put_file(
                key, path, content_type=info.mime_type, size=hasher.size, sha256=hasher.hexdigest
            )
            with anyio.CancelScope(shield=True):  # once stored, the outcome is recorded
                async with sessions() as session, session.begin():
                    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
                    if isinstance(info, audio.AudioInfo):
                        assert held is not None
                        uploading.finish(track, token=held.token)
                        replaced = tracks.attach_audio(
                            track,
                            stored=stored,
                            info=info,
                            backend=storage.name,
                            check_editable=False,
                        )
                    else:
                        replaced = tracks.attach_artwork(
                            track, stored=stored, info=info, backend=storage.name
                        )
                    answer = tracks.public(track)
                committed = True
            count_upload(kind=kind, via=via, outcome="stored", size=hasher.size)
        except BaseException as exc:
            count_upload(kind=kind, via=via, outcome=upload_outcome(exc))
            with anyio.CancelScope(shield=True):
                if key is not None and not committed:
                    await discard(storages, [(storage.name, key)])
                if held is not None and not committed:
                    await _release(sessions, track_id, held)
            raise
    if replaced is not None:
        await discard(storages, [replaced])
    return answer


async def _unlink(path: Path) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.Path(path).unlink(missing_ok=True)


async def _release(sessions: Sessions, track_id: uuid.UUID, held: uploading.Claim) -> None:
    try:
        async with sessions() as session, session.begin():
            track = await session.get(Track, track_id, with_for_update=True)
            if track is not None:
                uploading.release(track, held)
    except Exception:  # the claim then lapses by itself, and the verifier records that
        log.warning("upload_claim_not_released", track_id=str(track_id))


@uploads_router.put(
    "/{track_id}/audio",
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
    summary="Upload the audio as the raw body; Content-Digest (RFC 9530) optional",
    openapi_extra=docs.RAW_AUDIO,
)
@raises(*docs.RECEIVED, *docs.AUDIO)
async def upload_audio(track_id: uuid.UUID, receiver: ReceiverDep) -> TrackPublic:
    return await receive(receiver, track_id=track_id, spooler=_raw, kind="audio")


@uploads_router.post(
    "/{track_id}/audio",
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
    summary="Upload the audio from a browser form: multipart/form-data, field `file`",
    openapi_extra=docs.AUDIO_FORM,
)
@raises(*docs.RECEIVED, *docs.AUDIO, *docs.FORM)
async def upload_audio_form(track_id: uuid.UUID, receiver: ReceiverDep) -> TrackPublic:
    content_type = receiver.request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedForm("Send a multipart/form-data form with the file in the field `file`.")
    return await receive(receiver, track_id=track_id, spooler=_form, kind="audio")


@uploads_router.put(
    "/{track_id}/artwork",
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
    summary="Upload the artwork (JPEG or PNG, square, 1400-6000 px) as the raw body",
    openapi_extra=docs.RAW_ARTWORK,
)
@raises(*docs.RECEIVED, *docs.ARTWORK)
async def upload_artwork(track_id: uuid.UUID, receiver: ReceiverDep) -> TrackPublic:
    return await receive(receiver, track_id=track_id, spooler=_raw, kind="artwork")


@uploads_router.post(
    "/{track_id}/upload-url",
    dependencies=[RateLimit("upload")],
    summary="A URL to send the audio straight to storage; then call audio/complete",
)
@raises(*docs.TRACK_EDIT, (413, "payload_too_large"))
async def upload_url(
    track_id: uuid.UUID,
    body: UploadURLCreate,
    request: Request,
    user: DetachedUser,
    session: SessionDep,
    settings: SettingsDep,
    storages: StoragesDep,
    background: BackgroundTasks,
) -> UploadURLPublic:
    limit = min(settings.max_audio_bytes, PRESIGNED_PUT_LIMIT)
    if body.size > limit:
        raise TooLarge(limit)
    storage = storages.primary
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    stale_backend = track.upload_backend
    stale = uploading.start(
        track, storage=storage, size=body.size, sha256=body.sha256, content_type=body.content_type
    )
    await session.flush()
    assert track.upload_key is not None
    digest = base64.b64encode(bytes.fromhex(body.sha256)).decode()
    seconds = int(uploading.URL_LIFETIME.total_seconds())
    if isinstance(storage, S3Storage):
        url = await storage.signed_put(
            track.upload_key,
            expires=seconds,
            sha256_b64=digest,
            size=body.size,
            content_type=body.content_type,
        )
    else:
        path = media.upload_path(
            settings.signing_key,
            track.upload_key,
            seconds=seconds,
            size=body.size,
            sha256_b64=digest,
            content_type=body.content_type,
        )
        url = f"{settings.public_url}{path}"
    background.add_task(discard, storages, [(stale_backend, key) for key in stale])  # committed
    headers = {"Content-Type": body.content_type, "x-amz-checksum-sha256": digest}
    return UploadURLPublic(url=url, headers=headers, expires_in=seconds)


@uploads_router.post(
    "/{track_id}/audio/complete",
    status_code=status.HTTP_202_ACCEPTED,
    summary="The direct upload is done: the object is checked in the background",
)
@raises(*docs.COMPLETED)
async def complete_upload(
    track_id: uuid.UUID,
    request: Request,
    user: DetachedUser,
    session: SessionDep,
    storages: StoragesDep,
    background: BackgroundTasks,
) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    await uploading.complete(track, storage=storages[track.upload_backend])
    verifier = getattr(request.app.state, "verifier", None)
    if verifier is not None:
        background.add_task(verifier.wake.set)  # after the commit
    return tracks.public(track)


@signed_uploads_router.put("/media/{object_key:path}", max_body_size=HARD_CEILING)
async def signed_upload(
    object_key: str,
    request: Request,
    settings: SettingsDep,
    sessions: Sessions,
    storages: StoragesDep,
    expires: int = 0,
    size: int = 0,
    signature: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """The local backend's stand-in for a presigned S3 PUT: the signed headers must match, and
    the key must still be a track's pending upload, before and after the body arrives (a link
    used again later, or displaced by a newer one, keeps nothing)."""
    refused = NotFound("This link is not valid, or has expired.", code="invalid_link")
    try:
        validate(object_key)
    except InvalidKey:
        raise refused from None
    content_type = request.headers.get("content-type", "")
    digest = request.headers.get("x-amz-checksum-sha256", "")
    if (
        not object_key.startswith("upload/")
        or "local" not in storages
        or not media.valid_upload(
            settings.signing_key,
            object_key,
            expires=expires,
            size=size,
            sha256_b64=digest,
            content_type=content_type,
            signature=signature,
        )
        or not await _awaited(sessions, object_key)
    ):
        raise refused
    storage = storages["local"]
    set_deadline(request, None)
    await storage.put(  # the signed digest fixes the size as well
        object_key,
        uploads.chunks(request, settings.upload_timeout),
        content_type=content_type,
        max_size=size,
        expected_sha256=base64.b64decode(digest).hex(),
    )
    if not await _awaited(sessions, object_key):
        await storage.delete(object_key)
        raise uploading.UploadNotPending("This upload was replaced or ended while it arrived.")
    return Response(status_code=200, headers={"x-amz-checksum-sha256": digest})


async def _awaited(sessions: Sessions, object_key: str) -> bool:
    """Is some track still waiting for this object?"""
    async with sessions() as session, session.begin():
        found = await session.scalar(
            select(Track.id).where(
                Track.upload_key == object_key,
                Track.upload_state == UploadState.AWAITING_UPLOAD.value,
            )
        )
    return found is not None
