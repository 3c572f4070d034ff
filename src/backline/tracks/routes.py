"""Track endpoints: `/api/tracks` for the artist who owns them, `/media/...` for signed links.

Creating needs the artist role; every other route answers only the owner (and staff where
said), with 404 for anyone else. Objects replaced or left behind by a change are removed after
the change is committed, so no row ever points at a missing object.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import BackgroundTasks, Query, Request, status
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from backline import pagination
from backline.accounts.deps import CurrentUser, CurrentUserId, RequireRole
from backline.apidoc.declare import raises
from backline.deps import SessionDep, SettingsDep, StoragesDep
from backline.errors import NotFound
from backline.routing import router
from backline.storage.delivery import object_response
from backline.storage.keys import InvalidKey, validate
from backline.storage.s3 import S3Storage
from backline.tracks import artwork, links, media, review
from backline.tracks import service as tracks
from backline.tracks.models import Track, TrackStatus
from backline.tracks.schemas import SignedURL, TrackCreate, TrackPage, TrackPublic, TrackUpdate
from backline.tracks.verifier import discard

tracks_router = router(prefix="/api/tracks", tags=["tracks"])
review_router = router(
    prefix="/api/admin/tracks", tags=["review"], dependencies=[RequireRole("staff")]
)
media_router = router(public=True, include_in_schema=False)

LINK_SECONDS = links.LINK_SECONDS


@tracks_router.post("", status_code=status.HTTP_201_CREATED, dependencies=[RequireRole("artist")])
@raises((422, "validation_failed"))
async def create_track(body: TrackCreate, user: CurrentUser, session: SessionDep) -> TrackPublic:
    return tracks.public(await tracks.create(session, owner=user, data=body))


@tracks_router.get("", response_model=TrackPage)
@raises(pagination.INVALID_CURSOR)
async def list_tracks(
    user_id: CurrentUserId,
    session: SessionDep,
    cursor: pagination.CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    rows, next_cursor = await tracks.list(
        session, where=tracks.TrackFilter(owner_id=user_id), cursor=cursor, limit=limit
    )
    return Response(tracks.page_json(rows, next_cursor), media_type="application/json")


@tracks_router.get("/{track_id}")
@raises(NotFound)
async def get_track(track_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrackPublic:
    return tracks.public(await tracks.get(session, track_id=track_id, viewer=user))


@tracks_router.patch("/{track_id}")
@raises(NotFound, (409, "track_locked"), (409, "upload_in_progress"))
async def update_track(
    track_id: uuid.UUID, body: TrackUpdate, user: CurrentUser, session: SessionDep
) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    return tracks.public(await tracks.update(session, track=track, data=body))


@tracks_router.delete("/{track_id}", status_code=status.HTTP_204_NO_CONTENT)
@raises(NotFound, (409, "track_locked"), (409, "upload_in_progress"))
async def delete_track(
    track_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    storages: StoragesDep,
    background: BackgroundTasks,
) -> None:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    held = await tracks.delete(session, track=track)
    background.add_task(discard, storages, held)  # runs after the commit


@tracks_router.get("/{track_id}/audio-url")
@raises(NotFound, (404, "no_audio"))
async def audio_url(
    track_id: uuid.UUID,
    storages: StoragesDep,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> SignedURL:
    track = await tracks.get(session, track_id=track_id, viewer=user)
    if track.audio_key is None:
        raise NotFound("This track has no audio yet.", code="no_audio")
    url = await links.audio_url(track, storages=storages, settings=settings)
    return SignedURL(url=url, expires_in=LINK_SECONDS)


@tracks_router.post("/{track_id}/submit")
@raises(NotFound, (409, "track_locked"), (409, "upload_in_progress"), (422, "track_incomplete"))
async def submit_track(track_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrackPublic:
    track = await tracks.get_own(session, track_id=track_id, owner=user, lock=True)
    return tracks.public(await tracks.submit(session, track=track))


class RejectRequest(BaseModel):
    reason: Annotated[str, Field(min_length=3, max_length=1000)]


@review_router.get(
    "", summary="The review queue: oldest first, narrowed by any filter", response_model=TrackPage
)
@raises(pagination.INVALID_CURSOR)
async def review_queue(
    session: SessionDep,
    status_filter: Annotated[
        TrackStatus, Query(alias="status", description="default: submitted")
    ] = TrackStatus.SUBMITTED,
    genre: Annotated[str | None, Query(max_length=50)] = None,
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2,3}$")] = None,
    explicit: bool | None = None,
    artist_id: Annotated[uuid.UUID | None, Query(description="the owner's user ID")] = None,
    reviewer_id: uuid.UUID | None = None,
    q: Annotated[
        str | None, Query(max_length=100, description="in the title or primary artist")
    ] = None,
    order: Annotated[Literal["oldest", "newest"], Query()] = "oldest",
    cursor: pagination.CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    where = tracks.TrackFilter(
        owner_id=artist_id,
        status=status_filter.value,
        genre=genre,
        language=language,
        explicit=explicit,
        reviewer_id=reviewer_id,
        text=q.strip() if q else None,
    )
    rows, next_cursor = await tracks.list(
        session, where=where, oldest_first=order == "oldest", cursor=cursor, limit=limit
    )
    return Response(tracks.page_json(rows, next_cursor), media_type="application/json")


@review_router.post("/{track_id}/claim")
@raises(NotFound, (409, "not_reviewable"))
async def claim_track(track_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrackPublic:
    track = await review.reviewable(session, track_id=track_id)
    return tracks.public(await review.claim(session, track=track, reviewer=user))


@review_router.post("/{track_id}/approve")
@raises(NotFound, (409, "not_reviewable"))
async def approve_track(
    track_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> TrackPublic:
    track = await review.reviewable(session, track_id=track_id)
    decided = await review.decide(
        session, settings=settings, track=track, reviewer=user, approve=True
    )
    return tracks.public(decided)


@review_router.post("/{track_id}/reject")
@raises(NotFound, (409, "not_reviewable"))
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
    storages: StoragesDep,
    settings: SettingsDep,
    expires: int = 0,
    content_type: Annotated[str, Query(alias="type", max_length=100)] = "",
    sha256: Annotated[str, Query(max_length=64)] = "",
    signature: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """A local object by signed link; byte ranges and ETag as in `backline.storage.delivery`."""
    refused = NotFound("This link is not valid, or has expired.", code="invalid_link")
    try:
        validate(object_key)
    except InvalidKey:
        raise refused from None
    if "local" not in storages or not media.valid(
        settings.signing_key,
        object_key,
        expires=expires,
        content_type=content_type,
        sha256=sha256,
        signature=signature,
    ):
        raise refused
    storage = storages["local"]
    size = await storage.size(object_key)
    if size is None:
        raise refused
    return object_response(
        request,
        lambda start, length: storage.read(object_key, start=start, length=length),
        size=size,
        media_type=content_type or "application/octet-stream",
        etag=f'"{sha256}"' if sha256 else None,
        headers={"Cache-Control": "private, max-age=60"},
    )


PUBLIC_ARTWORK_SECONDS = 3600
ARTWORK_TYPES = dict(artwork.FORMATS.values())  # extension -> MIME type


@media_router.get("/public/artwork/{track_id}", summary="An approved track's cover art")
async def public_artwork(
    track_id: uuid.UUID, request: Request, session: SessionDep, storages: StoragesDep
) -> Response:
    """The one object meant to be public: an approved track's artwork, for anyone.

    Every other object is private. The local backend streams the image, S3 redirects to a
    short-lived presigned URL; either way it is cacheable and named by its SHA-256 (ETag).
    """
    track = await session.get(Track, track_id)
    if track is None or track.status != TrackStatus.APPROVED.value or not track.artwork_key:
        raise NotFound("No such artwork.")
    etag = f'"{track.artwork_sha256}"'
    cache = {"Cache-Control": f"public, max-age={PUBLIC_ARTWORK_SECONDS}", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=cache)
    content_type = ARTWORK_TYPES.get(track.artwork_format or "", "application/octet-stream")
    storage = storages[track.artwork_backend]
    if isinstance(storage, S3Storage):
        url = await storage.signed_get(
            track.artwork_key, expires=PUBLIC_ARTWORK_SECONDS * 2, content_type=content_type
        )
        return RedirectResponse(url, status_code=302, headers=cache)
    size = await storage.size(track.artwork_key)
    if size is None:
        raise NotFound("No such artwork.")
    return StreamingResponse(
        storage.read(track.artwork_key),
        media_type=content_type,
        headers={"Content-Length": str(size), **cache},
    )
