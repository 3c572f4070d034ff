"""Shared by the artist application tests: settings, people, a valid application."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.artists.models import ArtistApplication
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.db import create_sessionmaker
from tests.accounts.conftest import GENEROUS_LIMITS

APPLICATION: dict[str, Any] = {
    "artist_name": "The Night Owls",
    "bio": "A four-piece from Leeds playing loud, slow songs since 2019.",
    "genres": ["rock", "indie"],
    "country": "gb",
    "links": [
        {"url": "https://nightowls.example/", "sample": False},
        {"url": "https://audio.example/owls/first-song", "sample": True},
    ],
}


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)


async def apply(client: httpx.AsyncClient, who: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/artist-applications", json={**APPLICATION, **changes}, headers=who
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def applications(engine: AsyncEngine) -> list[ArtistApplication]:
    async with create_sessionmaker(engine)() as session:
        query = select(ArtistApplication).order_by(ArtistApplication.created_at)
        return list((await session.scalars(query)).all())


async def audit_events(engine: AsyncEngine, prefix: str = "artist_application") -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        query = (
            select(AuditEvent)
            .where(AuditEvent.event.startswith(prefix))
            .order_by(AuditEvent.created_at)
        )
        return list((await session.scalars(query)).all())
