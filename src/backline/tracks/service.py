"""Track rules, callable without HTTP. Functions take a session and never commit.

Only the owner, or staff, may see a track; anyone else gets the same 404 as for a track that
does not exist, so IDs reveal nothing. Only drafts and rejected tracks may change. A track is
submitted only when complete; `missing` lists what is not.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Row, Select, Text, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import Role, User
from backline.db import utcnow
from backline.errors import Conflict, NotFound, Unprocessable
from backline.pagination import decode, encode, newer_than, older_than
from backline.storage.base import StoredObject
from backline.tracks.artwork import ArtworkInfo
from backline.tracks.audio import AudioInfo
from backline.tracks.models import EDITABLE, PENDING, Track, TrackStatus
from backline.tracks.schemas import (
    TrackCreate,
    TrackPublic,
    TrackUpdate,
    split_number,
)

REQUIRED = ("title", "primary_artist", "genre", "explicit", "language", "release_date", "isrc")


# A `tracks` row read without the ORM, read-only: what a client sees of a track, the columns
# named here, in the order `_shown` takes them.
TrackRow = Row[*tuple[Any, ...]]
_LISTED_NAMES = (
    "id",
    "title",
    "primary_artist",
    "featured_artists",
    "genre",
    "explicit",
    "language",
    "release_date",
    "isrc",
    "credits",
    "status",
    "rejection_reason",
    "audio_key",
    "audio_size",
    "audio_sha256",
    "audio_format",
    "audio_duration",
    "audio_sample_rate",
    "audio_channels",
    "audio_bitrate",
    "artwork_key",
    "artwork_size",
    "artwork_sha256",
    "artwork_format",
    "artwork_width",
    "artwork_height",
    "upload_state",
    "upload_error",
    "created_at",
    "updated_at",
)
# JSON columns are read as their text and parsed by `_shown`: cheaper than the driver's
# decoding, which calls back into Python for each value.
_LISTED = tuple(
    cast(column, Text).label(name) if isinstance(column.type, JSON) else column
    for name in _LISTED_NAMES
    for column in (Track.__table__.c[name],)
)
_LISTING = select(*_LISTED)  # made once: each list narrows a copy


def _shown(  # one parameter per listed column, in `_LISTED_NAMES` order
    id: uuid.UUID,
    title: str,
    primary_artist: str | None,
    featured_artists: builtins.list[str] | str | None,
    genre: str | None,
    explicit: bool | None,
    language: str | None,
    release_date: date | None,
    isrc: str | None,
    credits: builtins.list[dict[str, Any]] | str | None,
    status: str,
    rejection_reason: str | None,
    audio_key: str | None,
    audio_size: int | None,
    audio_sha256: str | None,
    audio_format: str | None,
    audio_duration: float | None,
    audio_sample_rate: int | None,
    audio_channels: int | None,
    audio_bitrate: int | None,
    artwork_key: str | None,
    artwork_size: int | None,
    artwork_sha256: str | None,
    artwork_format: str | None,
    artwork_width: int | None,
    artwork_height: int | None,
    upload_state: str | None,
    upload_error: str | None,
    created_at: datetime,
    updated_at: datetime,
) -> dict[str, Any]:
    if isinstance(featured_artists, str):  # a listed row's JSON columns: their text
        featured_artists = orjson.loads(featured_artists)
    credited: builtins.list[dict[str, Any]] = (
        orjson.loads(credits) if isinstance(credits, str) else credits
    ) or []  # JSON null (a None stored in the column) reads as no credits, as before
    audio = None
    if audio_key is not None:
        audio = {
            "size": audio_size or 0,
            "sha256": audio_sha256 or "",
            "format": audio_format or "",
            "duration_seconds": audio_duration or 0.0,
            "sample_rate": audio_sample_rate,
            "channels": audio_channels,
            "bitrate": audio_bitrate,
        }
    artwork = None
    if artwork_key is not None:
        artwork = {
            "size": artwork_size or 0,
            "sha256": artwork_sha256 or "",
            "format": artwork_format or "",
            "width": artwork_width or 0,
            "height": artwork_height or 0,
        }
    return {
        "id": id,
        "title": title,
        "primary_artist": primary_artist,
        "featured_artists": builtins.list(featured_artists or ()),
        "genre": genre,
        "explicit": explicit,
        "language": language,
        "release_date": release_date,
        "isrc": isrc,
        "credits": [{**credit, "split": _split(credit["split"])} for credit in credited],
        "status": status,
        "rejection_reason": rejection_reason,
        "audio": audio,
        "artwork": artwork,
        "upload": {"state": upload_state, "error": upload_error} if upload_state else None,
        "created_at": created_at,
        "updated_at": updated_at,
    }


# Splits come from a small set (0 to 100 in hundredths): each stored text is converted once.
_split = functools.lru_cache(maxsize=4096)(split_number)


def public_dict(track: Track | TrackRow) -> dict[str, Any]:
    """The track as clients see it, as plain data: `TrackPublic`'s shape, built without a
    model. A page of a hundred tracks is serialized straight from these (see `page_json`).

    A listed row is taken by position (naming a row's columns one by one costs more than
    everything else done with them).
    """
    if isinstance(track, Track):
        return _shown(*[getattr(track, name) for name in _LISTED_NAMES])
    return _shown(*track)


def public(track: Track) -> TrackPublic:
    return TrackPublic.model_validate(public_dict(track))


def _json_default(value: object) -> str:
    if isinstance(value, uuid.UUID):  # a driver's own UUID subclass (asyncpg's)
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def page_json(rows: Sequence[TrackRow], next_cursor: str | None) -> bytes:
    """A `TrackPage` of listed rows as JSON, serialized once from plain data by orjson: the
    same bytes as the models' encoder (pydantic-core) gives, instants in UTC written with `Z`,
    several times faster."""
    page = {"items": [_shown(*row) for row in rows], "next_cursor": next_cursor}
    return orjson.dumps(page, default=_json_default, option=orjson.OPT_UTC_Z)


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


async def delete(session: AsyncSession, *, track: Track) -> builtins.list[ObjectRef]:
    """Delete the row; returns the objects the caller removes once this is committed."""
    ensure_editable(track)
    held = objects(track)
    await session.delete(track)
    await session.flush()
    return held


ObjectRef = tuple[str | None, str]  # (backend, key)


def objects(track: Track) -> builtins.list[ObjectRef]:
    """Every object the track holds, a pending upload's included."""
    found: builtins.list[ObjectRef] = []
    for backend, key in (
        (track.audio_backend, track.audio_key),
        (track.artwork_backend, track.artwork_key),
        (track.upload_backend, track.upload_key),
    ):
        if key:
            found.append((backend, key))
    return found


async def delete_drafts(session: AsyncSession, *, owner_id: uuid.UUID) -> builtins.list[ObjectRef]:
    """An account is going: its drafts go with it (a submitted track stays, detached).

    Returns the objects the caller removes once this is committed.
    """
    drafts = (
        await session.scalars(
            select(Track)
            .where(Track.owner_id == owner_id, Track.status == TrackStatus.DRAFT.value)
            .with_for_update()
        )
    ).all()
    held: builtins.list[ObjectRef] = []
    for track in drafts:
        held += objects(track)
        await session.delete(track)
    await session.flush()
    return held


async def export(session: AsyncSession, *, owner_id: uuid.UUID) -> builtins.list[dict[str, Any]]:
    """Every track of the owner, as JSON-ready data (for the account export)."""
    rows = await session.scalars(
        select(Track).where(Track.owner_id == owner_id).order_by(Track.created_at)
    )
    return [public(track).model_dump(mode="json") for track in rows]


def attach_audio(
    track: Track,
    *,
    stored: StoredObject,
    info: AudioInfo,
    backend: str,
    check_editable: bool = True,
) -> ObjectRef | None:
    """Point the track at a new audio object; returns the one it replaces.

    A verification that finishes after the track was submitted still lands
    (`check_editable=False`): the upload was started, and checked, while it was editable.
    """
    if check_editable:
        ensure_editable(track)
    replaced = (track.audio_backend, track.audio_key) if track.audio_key else None
    track.audio_key = stored.key
    track.audio_backend = backend
    track.audio_size = stored.size
    track.audio_sha256 = stored.sha256
    track.audio_format = info.format
    track.audio_duration = info.duration_seconds
    track.audio_sample_rate = info.sample_rate
    track.audio_channels = info.channels
    track.audio_bitrate = info.bitrate
    track.updated_at = utcnow()
    return replaced


def attach_artwork(
    track: Track, *, stored: StoredObject, info: ArtworkInfo, backend: str
) -> ObjectRef | None:
    """Point the track at new artwork; returns the image it replaces."""
    ensure_editable(track)
    replaced = (track.artwork_backend, track.artwork_key) if track.artwork_key else None
    track.artwork_key = stored.key
    track.artwork_backend = backend
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
    if track.artwork_key is None:
        gaps.append("artwork")
    return gaps


async def submit(session: AsyncSession, *, track: Track) -> Track:
    ensure_editable(track)
    if track.upload_state in PENDING:
        raise Conflict(
            "An audio upload is still under way; submit when it is ready.",
            code="upload_in_progress",
            state=track.upload_state,
        )
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


@dataclass(frozen=True)
class TrackFilter:
    """What a list is narrowed to; None means any."""

    owner_id: uuid.UUID | None = None
    status: str | None = None
    genre: str | None = None
    language: str | None = None
    explicit: bool | None = None
    reviewer_id: uuid.UUID | None = None
    text: str | None = None  # in the title or the primary artist, case-insensitively


def _narrowed(query: Select[Any], where: TrackFilter) -> Select[Any]:
    for column, value in (
        (Track.owner_id, where.owner_id),
        (Track.status, where.status),
        (Track.language, where.language),
        (Track.explicit, where.explicit),
        (Track.reviewer_id, where.reviewer_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.genre is not None:
        query = query.where(func.lower(Track.genre) == where.genre.lower())
    if where.text:
        needle = where.text.lower()
        query = query.where(
            or_(
                func.lower(Track.title).contains(needle, autoescape=True),
                func.lower(Track.primary_artist).contains(needle, autoescape=True),
            )
        )
    return query


async def list(  # the service verb
    session: AsyncSession,
    *,
    where: TrackFilter = TrackFilter(),  # frozen, so one default is safe to share
    oldest_first: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[Sequence[TrackRow], str | None]:
    """A page at a time, newest first unless `oldest_first` (a review queue's order).

    The rows are read-only snapshots of what `public_dict` reads (plain rows, not ORM objects,
    which cost several times as much to build): show them, or `get` a track to change it.
    """
    query = _narrowed(_LISTING, where)
    if cursor is not None:
        after = newer_than if oldest_first else older_than
        query = query.where(after(Track.created_at, Track.id, decode(cursor)))
    if oldest_first:
        query = query.order_by(Track.created_at, Track.id)
    else:
        query = query.order_by(Track.created_at.desc(), Track.id.desc())
    # A Core statement of plain columns, run on the session's connection: the ORM would add
    # its compile and loading steps for each row and change nothing in them.
    connection = await session.connection()
    rows: Sequence[TrackRow] = (await connection.execute(query.limit(limit + 1))).all()
    page = rows[:limit]
    return page, encode(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
