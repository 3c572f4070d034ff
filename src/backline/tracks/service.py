"""Track rules, callable without HTTP. Functions take a session and never commit.

Only the owner, or staff, may see a track; anyone else gets the same 404 as for a track that
does not exist, so IDs reveal nothing. Only drafts and rejected tracks may change. A track is
submitted only when complete; `missing` lists what is not.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import Role, User
from backline.db import utcnow
from backline.errors import Conflict, NotFound, Unprocessable
from backline.pagination import decode, encode, older_than
from backline.storage.base import StoredObject
from backline.tracks.artwork import ArtworkInfo
from backline.tracks.audio import AudioInfo
from backline.tracks.models import EDITABLE, Track, TrackStatus
from backline.tracks.schemas import (
    ArtworkPublic,
    AudioPublic,
    TrackCreate,
    TrackPublic,
    TrackUpdate,
)

REQUIRED = ("title", "primary_artist", "genre", "explicit", "language", "release_date", "isrc")


def public(track: Track) -> TrackPublic:
    audio = None
    if track.audio_key is not None:
        audio = AudioPublic(
            size=track.audio_size or 0,
            sha256=track.audio_sha256 or "",
            format=track.audio_format or "",
            duration_seconds=track.audio_duration or 0.0,
            sample_rate=track.audio_sample_rate,
            channels=track.audio_channels,
            bitrate=track.audio_bitrate,
        )
    artwork = None
    if track.artwork_key is not None:
        artwork = ArtworkPublic(
            size=track.artwork_size or 0,
            sha256=track.artwork_sha256 or "",
            format=track.artwork_format or "",
            width=track.artwork_width or 0,
            height=track.artwork_height or 0,
        )
    return TrackPublic(
        id=track.id,
        title=track.title,
        primary_artist=track.primary_artist,
        featured_artists=builtins.list(track.featured_artists or []),
        genre=track.genre,
        explicit=track.explicit,
        language=track.language,
        release_date=track.release_date,
        isrc=track.isrc,
        credits=builtins.list(track.credits or []),
        status=track.status,
        rejection_reason=track.rejection_reason,
        audio=audio,
        artwork=artwork,
        created_at=track.created_at,
        updated_at=track.updated_at,
    )


def _values(data: TrackCreate | TrackUpdate) -> dict[str, Any]:
    values = data.model_dump(exclude_unset=True, mode="python")
    if "credits" in values and values["credits"] is not None:
        values["credits"] = [
            {**credit, "split": str(credit["split"])} for credit in values["credits"]
        ]
    if values.get("featured_artists") is None and "featured_artists" in values:
        values["featured_artists"] = []
    if values.get("credits") is None and "credits" in values:
        values["credits"] = []
    return values


async def create(session: AsyncSession, *, owner: User, data: TrackCreate) -> Track:
    track = Track(owner_id=owner.id, status=TrackStatus.DRAFT.value, **_values(data))
    session.add(track)
    await session.flush()
    return track


async def get(session: AsyncSession, *, track_id: uuid.UUID, viewer: User) -> Track:
    track = await session.get(Track, track_id)
    staff = viewer.role in (Role.STAFF.value, Role.ADMIN.value)
    if track is None or (track.owner_id != viewer.id and not staff):
        raise NotFound("No such track.")
    return track


async def get_own(
    session: AsyncSession, *, track_id: uuid.UUID, owner: User, lock: bool = False
) -> Track:
    track = await session.get(Track, track_id, with_for_update=lock)
    if track is None or track.owner_id != owner.id:
        raise NotFound("No such track.")
    return track


def ensure_editable(track: Track) -> None:
    if track.status not in EDITABLE:
        raise Conflict(f"A {track.status} track cannot be changed.", code="track_locked")


async def update(session: AsyncSession, *, track: Track, data: TrackUpdate) -> Track:
    ensure_editable(track)
    for name, value in _values(data).items():
        if name == "title" and value is None:
            raise Unprocessable("A track needs a title.", code="validation_failed")
        setattr(track, name, value)
    track.updated_at = utcnow()
    await session.flush()
    return track


async def delete(session: AsyncSession, *, track: Track) -> builtins.list[str]:
    """Delete the row; returns the object keys the caller removes once this is committed."""
    ensure_editable(track)
    keys = [k for k in (track.audio_key, track.artwork_key) if k]
    await session.delete(track)
    await session.flush()
    return keys


def attach_audio(track: Track, *, stored: StoredObject, info: AudioInfo) -> str | None:
    """Point the track at a new audio object; returns the key of the one it replaces."""
    ensure_editable(track)
    replaced = track.audio_key
    track.audio_key = stored.key
    track.audio_size = stored.size
    track.audio_sha256 = stored.sha256
    track.audio_format = info.format
    track.audio_duration = info.duration_seconds
    track.audio_sample_rate = info.sample_rate
    track.audio_channels = info.channels
    track.audio_bitrate = info.bitrate
    track.updated_at = utcnow()
    return replaced


def attach_artwork(track: Track, *, stored: StoredObject, info: ArtworkInfo) -> str | None:
    """Point the track at new artwork; returns the key of the image it replaces."""
    ensure_editable(track)
    replaced = track.artwork_key
    track.artwork_key = stored.key
    track.artwork_size = stored.size
    track.artwork_sha256 = stored.sha256
    track.artwork_format = info.format
    track.artwork_width = info.width
    track.artwork_height = info.height
    track.updated_at = utcnow()
    return replaced


def missing(track: Track) -> builtins.list[str]:
    gaps = [name for name in REQUIRED if getattr(track, name) in (None, "")]
    if not track.credits:
        gaps.append("credits")
    if track.audio_key is None:
        gaps.append("audio")
    return gaps


async def submit(session: AsyncSession, *, track: Track) -> Track:
    ensure_editable(track)
    gaps = missing(track)
    if gaps:
        raise Unprocessable(
            f"The track is not complete: {', '.join(gaps)}.", code="track_incomplete", missing=gaps
        )
    track.status = TrackStatus.SUBMITTED.value
    track.submitted_at = utcnow()
    track.rejection_reason = None
    await session.flush()
    return track


async def list(  # the service verb
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[Sequence[Track], str | None]:
    """Newest first, a page at a time."""
    query = select(Track)
    if owner_id is not None:
        query = query.where(Track.owner_id == owner_id)
    if status is not None:
        query = query.where(Track.status == status)
    if cursor is not None:
        query = query.where(older_than(Track.created_at, Track.id, decode(cursor)))
    rows = (
        await session.scalars(
            query.order_by(Track.created_at.desc(), Track.id.desc()).limit(limit + 1)
        )
    ).all()
    page = rows[:limit]
    return page, encode(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
