"""Track endpoints: `/api/tracks` for the artist who owns them, `/media/...` for signed links.

Creating needs the artist role; every other route answers only the owner (and staff where
said), with 404 for anyone else. Objects replaced or left behind by a change are removed after
the change is committed, so no row ever points at a missing object.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import BackgroundTasks, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from backline.accounts.deps import CurrentUser, RequireRole
from backline.deps import SessionDep, SettingsDep
from backline.errors import NotFound
from backline.middleware.deadline import set_deadline
from backline.ratelimit.deps import RateLimit
from backline.routing import router
from backline.storage.base import Storage
from backline.storage.keys import InvalidKey, new_key, validate
from backline.storage.local import LocalStorage
from backline.storage.s3 import S3Storage
from backline.tracks import artwork, audio, media, review, uploads
from backline.tracks import service as tracks
from backline.tracks.models import Track, TrackStatus
from backline.tracks.schemas import SignedURL, TrackCreate, TrackPage, TrackPublic, TrackUpdate

tracks_router = router(prefix="/api/tracks", tags=["tracks"])
review_router = router(
    prefix="/api/admin/tracks", tags=["review"], dependencies=[RequireRole("staff")]
)
media_router = router(public=True, include_in_schema=False)

HARD_CEILING = 8 * 1024**3  # the route's own body cap; the configured one is checked in `spool`
LINK_SECONDS = 300


def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def _discard(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        await storage.delete(key)


@tracks_router.post("", status_code=status.HTTP_201_CREATED, dependencies=[RequireRole("artist")])
async def create_track(body: TrackCreate, user: CurrentUser, session: SessionDep) -> TrackPublic:
    return tracks.public(await tracks.create(session, owner=user, data=body))


@tracks_router.get("")
async def list_tracks(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TrackPage:
    rows, next_cursor = await tracks.list(session, owner_id=user.id, cursor=cursor, limit=limit)
    return TrackPage(items=[tracks.public(row) for row in rows], next_cursor=next_cursor)


@tracks_router.get("/{track_id}")
async def get_track(track_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrackPublic:
    return tracks.public(await tracks.get(session, track_id=track_id, viewer=user))


@tracks_router.patch("/{track_id}")
async def update_track(
    track_id: uuid.UUID, body: TrackUpdate, user: CurrentUser, session: SessionDep
) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    return tracks.public(await tracks.update(session, track=track, data=body))


@tracks_router.delete("/{track_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_track(
    track_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
) -> None:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    keys = await tracks.delete(session, track=track)
    background.add_task(_discard, _storage(request), keys)  # runs after the commit


async def _receive(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    track: Track,
    *,
    kind: str,
    max_size: int,
    inspect: Callable[[Path], Any],
    attach: Callable[..., str | None],
) -> TrackPublic:
    """Spool the body, check its digest and content, store it, and point the track at it.

    Nothing is kept on any refusal or failure; a replaced object is removed after the commit.
    """
    tracks.ensure_editable(track)
    expected = uploads.declared_sha256(request)
    set_deadline(request, None)  # an upload is bounded by idle time instead (see `uploads`)
    path, hasher = await uploads.spool(
        request,
        directory=settings.var_dir / "uploads",
        max_size=max_size,
        idle_timeout=settings.upload_timeout,
    )
    storage = _storage(request)
    key = None
    try:
        hasher.verify(expected)
        info = await anyio.to_thread.run_sync(inspect, path)
        key = new_key(kind, info.format)
        stored = await storage.put(
            key,
            uploads.read_file(path),
            content_type=info.mime_type,
            max_size=max_size,
            expected_sha256=hasher.hexdigest,
        )
        replaced = attach(track, stored=stored, info=info)
        await session.flush()
    except BaseException:
        if key is not None:
            await storage.delete(key)
        raise
    finally:
        await anyio.Path(path).unlink(missing_ok=True)
    if replaced:
        background.add_task(_discard, storage, [replaced])
    return tracks.public(track)


@tracks_router.put(
    "/{track_id}/audio",
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
    summary="Upload the audio as the raw body; Content-Digest (RFC 9530) optional",
)
async def upload_audio(
    track_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    return await _receive(
        request,
        session,
        settings,
        background,
        track,
        kind="audio",
        max_size=settings.max_audio_bytes,
        inspect=audio.inspect_file,
        attach=tracks.attach_audio,
    )


@tracks_router.put(
    "/{track_id}/artwork",
    dependencies=[RateLimit("upload")],
    max_body_size=HARD_CEILING,
    summary="Upload the artwork (JPEG or PNG, square, 1400-6000 px) as the raw body",
)
async def upload_artwork(
    track_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    return await _receive(
        request,
        session,
        settings,
        background,
        track,
        kind="artwork",
        max_size=settings.max_artwork_bytes,
        inspect=artwork.inspect_image,
        attach=tracks.attach_artwork,
    )


@tracks_router.get("/{track_id}/audio-url")
async def audio_url(
    track_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> SignedURL:
    track = await tracks.get(session, track_id=track_id, viewer=user)
    if track.audio_key is None:
        raise NotFound("This track has no audio yet.", code="no_audio")
    storage = _storage(request)
    if isinstance(storage, S3Storage):
        url = await storage.signed_get(track.audio_key, expires=LINK_SECONDS)
    else:
        path = media.signed_path(settings.signing_key, track.audio_key, seconds=LINK_SECONDS)
        url = f"{settings.public_url}{path}"
    return SignedURL(url=url, expires_in=LINK_SECONDS)


@tracks_router.post("/{track_id}/submit")
async def submit_track(track_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    return tracks.public(await tracks.submit(session, track=track))


class RejectRequest(BaseModel):
    reason: Annotated[str, Field(min_length=3, max_length=1000)]


@review_router.get("")
async def review_queue(
    session: SessionDep,
    status_filter: Annotated[
        TrackStatus, Query(alias="status", description="default: submitted")
    ] = TrackStatus.SUBMITTED,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TrackPage:
    rows, next_cursor = await tracks.list(
        session, status=status_filter.value, cursor=cursor, limit=limit
    )
    return TrackPage(items=[tracks.public(row) for row in rows], next_cursor=next_cursor)


@review_router.post("/{track_id}/claim")
async def claim_track(track_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrackPublic:
    track = await review.reviewable(session, track_id=track_id)
    return tracks.public(await review.claim(session, track=track, reviewer=user))


@review_router.post("/{track_id}/approve")
async def approve_track(
    track_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> TrackPublic:
    track = await review.reviewable(session, track_id=track_id)
    decided = await review.decide(
        session, settings=settings, track=track, reviewer=user, approve=True
    )
    return tracks.public(decided)


@review_router.post("/{track_id}/reject")
async def reject_track(
    track_id: uuid.UUID,
    body: RejectRequest,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> TrackPublic:
    track = await review.reviewable(session, track_id=track_id)
    decided = await review.decide(
        session,
        settings=settings,
        track=track,
        reviewer=user,
        approve=False,
        reason=body.reason.strip(),
    )
    return tracks.public(decided)


@media_router.get("/media/{object_key:path}")
async def signed_media(
    object_key: str,
    request: Request,
    settings: SettingsDep,
    expires: int = 0,
    signature: Annotated[str, Query(max_length=100)] = "",
) -> StreamingResponse:
    storage = _storage(request)
    refused = NotFound("This link is not valid, or has expired.", code="invalid_link")
    try:
        validate(object_key)
    except InvalidKey:
        raise refused from None
    if not isinstance(storage, LocalStorage) or not media.valid(
        settings.signing_key, object_key, expires, signature
    ):
        raise refused
    size = await storage.size(object_key)
    if size is None:
        raise refused
    kind = mimetypes.guess_type(object_key)[0] or "application/octet-stream"
    return StreamingResponse(
        storage.read(object_key),
        media_type=kind,
        headers={"Content-Length": str(size), "Cache-Control": "private, max-age=60"},
    )
