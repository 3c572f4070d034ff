"""A page of tracks is serialized from rows without the models: it must read, byte for byte, as
the models write the same tracks (`TrackPage` of `TrackPublic`, the single track's shape)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role, User
from backline.db import create_sessionmaker
from backline.pagination import encode
from backline.tracks import service as tracks
from backline.tracks.models import Track
from backline.tracks.schemas import TrackCreate, TrackPage
from tests.accounts.conftest import bearer, login

BEGAN = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


def _credits(*splits: str) -> list[dict[str, str]]:
    return [{"name": f"Ñame {i}", "role": "writer", "split": s} for i, s in enumerate(splits)]


# Each: the metadata a client sends, then columns set as uploads and review would set them.
SHAPES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"title": "Bare"}, {}),
    (
        {
            "title": 'Ça plane — 東京 "quoted" \\ tab\tline\u2028end </script>',
            "primary_artist": "Björk",
            "featured_artists": ["Sigur Rós", "MØ"],
            "genre": "Électro",
            "explicit": True,
            "language": "is",
            "release_date": "2027-01-15",
            "isrc": "USRC17607839",
            "credits": _credits("33.33", "33.33", "33.34"),
        },
        {
            "status": "rejected",
            "rejection_reason": "Too quiet: \u22123 dB\n\x01",
            "audio_key": "a/1",
            "audio_backend": "local",
            "audio_size": 2**40,
            "audio_sha256": "ab" * 32,
            "audio_format": "wav",
            "audio_duration": 3.0,
            "audio_sample_rate": 48_000,
            "audio_channels": 2,
            "audio_bitrate": 1_536_000,
            "artwork_key": "w/1",
            "artwork_backend": "local",
            "artwork_size": 12_345,
            "artwork_sha256": "cd" * 32,
            "artwork_format": "png",
            "artwork_width": 1400,
            "artwork_height": 1400,
            "upload_state": "failed",
            "upload_error": "checksum_mismatch",
        },
    ),
    (
        {"title": "Hundredths", "explicit": False, "credits": _credits(0, "99.99", 0.01)},
        {
            "audio_key": "a/2",
            "audio_size": 10,
            "audio_format": "mp3",
            "audio_duration": 93.21333333333334,
            "upload_state": "ready",
        },
    ),
    ({"title": "Whole", "credits": _credits(100)}, {"audio_key": "a/3", "audio_duration": 0.25}),
    ({"title": "Halves", "credits": _credits("12.5", "87.50")}, {"audio_key": "a/4"}),
    ({"title": "JSON nulls"}, {"featured_artists": None, "credits": None}),  # stored as null
]


async def _seed(engine: AsyncEngine, owner_email: str) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        owner = (await session.scalars(select(User).where(User.email == owner_email))).one()
        for i, (metadata, columns) in enumerate(SHAPES):
            track = await tracks.create(
                session, owner=owner, data=TrackCreate.model_validate(metadata)
            )
            for name, value in columns.items():
                setattr(track, name, value)
            # Distinct instants, one of them on a whole second (written without a fraction).
            track.created_at = BEGAN + timedelta(seconds=i, microseconds=0 if i == 1 else 7 * i)
            track.updated_at = track.created_at + timedelta(days=1, microseconds=1)


async def _as_models(engine: AsyncEngine, limit: int) -> bytes:
    """The newest `limit` tracks, as the models write them."""
    async with create_sessionmaker(engine)() as session:
        found = (
            await session.scalars(
                select(Track).order_by(Track.created_at.desc(), Track.id.desc()).limit(limit + 1)
            )
        ).all()
    shown = found[:limit]
    cursor = encode(shown[-1].created_at, shown[-1].id) if len(found) > limit else None
    page = TrackPage(items=[tracks.public(track) for track in shown], next_cursor=cursor)
    return page.model_dump_json().encode()


@pytest.mark.parametrize("limit", [100, 3])
async def test_a_page_reads_byte_for_byte_as_the_models_write_it(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine, limit: int
) -> None:
    await make_user("artist@example.com", role=Role.ARTIST, display_name="Artist")
    await _seed(engine, "artist@example.com")
    artist = bearer(await login(client, "artist@example.com"))

    listed = await client.get("/api/tracks", params={"limit": limit}, headers=artist)

    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json"
    assert listed.content == await _as_models(engine, limit)
    if limit == 100:
        assert "東京" in listed.text  # UTF-8, not escaped
        assert '"split":33.33' in listed.text
        assert '"created_at":"2026-11-30T12:00:01Z"' in listed.text  # UTC as Z, no zero fraction
    else:
        assert listed.json()["next_cursor"] is not None


async def test_the_service_page_matches_the_models_and_rows_read_as_tracks(
    make_user: Any, engine: AsyncEngine
) -> None:
    owner = (await make_user("artist@example.com", role=Role.ARTIST)).user
    await _seed(engine, "artist@example.com")
    expected = await _as_models(engine, 100)
    async with create_sessionmaker(engine)() as session:
        rows, cursor = await tracks.list(
            session, where=tracks.TrackFilter(owner_id=owner.id), limit=100
        )
        assert tracks.page_json(rows, cursor) == expected
        for row in rows:  # a row and the track it came from read the same
            track = await session.get(Track, row.id)
            assert track is not None
            assert tracks.public_dict(row) == tracks.public_dict(track)


async def test_a_duration_that_is_not_a_number_is_null_as_in_the_model(
    make_user: Any, engine: AsyncEngine
) -> None:
    """Not JSON's to write: the model writes null, and so does a page (never a bare NaN).
    PostgreSQL keeps a NaN; SQLite keeps NULL (read as 0.0)."""
    owner = (await make_user("artist@example.com", role=Role.ARTIST)).user
    async with create_sessionmaker(engine)() as session, session.begin():
        track = await tracks.create(session, owner=owner, data=TrackCreate(title="NaN"))
        track.audio_key, track.audio_duration = "a/nan", math.nan
    async with create_sessionmaker(engine)() as session:
        rows, cursor = await tracks.list(session, where=tracks.TrackFilter(owner_id=owner.id))
    page = tracks.page_json(rows, cursor)
    assert page == await _as_models(engine, 100)
    assert b'"duration_seconds":NaN' not in page
