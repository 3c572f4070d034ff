"""The applicant's side: applying, reading one's application, withdrawing, the cool-down."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from backline.artists.models import ArtistApplication
from backline.db import create_sessionmaker, utcnow
from tests.accounts.conftest import bearer, login, outbox
from tests.artists.conftest import APPLICATION, applications, apply, audit_events


async def signed_in(
    client: httpx.AsyncClient, make_user: Any, email: str, **kw: Any
) -> dict[str, str]:
    await make_user(email, **kw)
    return bearer(await login(client, email))


async def test_applying_stores_the_application_and_mails_a_confirmation(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    fan = await signed_in(client, make_user, "fan@example.com", display_name="Fan")
    missing = await client.get("/api/artist-applications/me", headers=fan)
    assert missing.status_code == 404
    assert missing.json()["code"] == "no_application"
    created = await apply(client, fan, genres=["rock", "indie", "rock"])
    assert created["status"] == "submitted"
    assert created["country"] == "GB"  # normalized
    assert created["genres"] == ["rock", "indie"]  # a repeat counts once
    assert created["links"][1] == {"url": "https://audio.example/owls/first-song", "sample": True}
    assert created["rejection_reason"] is None
    assert created["reapply_after"] is None
    mine = (await client.get("/api/artist-applications/me", headers=fan)).json()
    assert mine == created
    [mail] = await outbox(engine, "application_received")
    assert mail.to_address == "fan@example.com"
    assert "The Night Owls" in (mail.text_body or "")
    [event] = await audit_events(engine)
    assert event.event == "artist_application_submitted"
    assert event.details == {"application_id": created["id"]}


async def test_a_name_and_a_bio_are_enough_to_apply(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    fan = await signed_in(client, make_user, "fan@example.com")
    response = await client.post(
        "/api/artist-applications", json={"artist_name": "Owls", "bio": "We play."}, headers=fan
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["genres"], created["country"], created["links"]) == ([], None, [])


async def test_one_open_application_at_a_time(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    fan = await signed_in(client, make_user, "fan@example.com")
    first = await apply(client, fan)
    second = await client.post("/api/artist-applications", json=APPLICATION, headers=fan)
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["code"] == "application_open"
    assert second.json()["application_id"] == first["id"]
    assert len(await applications(engine)) == 1
    assert len(await outbox(engine, "application_received")) == 1


async def test_artists_and_staff_cannot_apply(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    for role in (Role.ARTIST, Role.STAFF, Role.ADMIN):
        who = await signed_in(client, make_user, f"{role.value}@example.com", role=role)
        refused = await client.post("/api/artist-applications", json=APPLICATION, headers=who)
        assert refused.status_code == 409, role
        assert refused.json()["code"] == "already_artist"
        assert refused.json()["role"] == role.value
    assert await applications(engine) == []
    assert await outbox(engine) == []
    anonymous = await client.post("/api/artist-applications", json=APPLICATION)
    assert anonymous.status_code == 401


async def test_withdrawing_closes_a_submitted_application(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    fan = await signed_in(client, make_user, "fan@example.com")
    nothing = await client.post("/api/artist-applications/me/withdraw", headers=fan)
    assert nothing.status_code == 404
    assert nothing.json()["code"] == "no_open_application"
    created = await apply(client, fan)
    withdrawn = await client.post("/api/artist-applications/me/withdraw", headers=fan)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert withdrawn.json()["withdrawn_at"] is not None
    again = await client.post("/api/artist-applications/me/withdraw", headers=fan)
    assert again.status_code == 404
    renewed = await apply(client, fan)  # no cool-down after withdrawing
    assert renewed["id"] != created["id"]
    events = [event.event for event in await audit_events(engine)]
    assert events == [
        "artist_application_submitted",
        "artist_application_withdrawn",
        "artist_application_submitted",
    ]


async def test_a_claimed_application_cannot_be_withdrawn(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    fan = await signed_in(client, make_user, "fan@example.com")
    staff = await signed_in(client, make_user, "staff@example.com", role=Role.STAFF)
    created = await apply(client, fan)
    claimed = await client.post(
        f"/api/admin/artist-applications/{created['id']}/claim", headers=staff
    )
    assert claimed.status_code == 200
    refused = await client.post("/api/artist-applications/me/withdraw", headers=fan)
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_withdrawable"
    [stored] = await applications(engine)
    assert stored.status == "in_review"


async def test_after_a_rejection_a_new_application_waits_for_the_cool_down(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    fan = await signed_in(client, make_user, "fan@example.com")
    staff = await signed_in(client, make_user, "staff@example.com", role=Role.STAFF)
    created = await apply(client, fan)
    rejected = await client.post(
        f"/api/admin/artist-applications/{created['id']}/reject",
        json={"reason": "Please link to recordings we can hear."},
        headers=staff,
    )
    assert rejected.status_code == 200, rejected.text
    decided = datetime.fromisoformat(rejected.json()["decided_at"])
    mine = (await client.get("/api/artist-applications/me", headers=fan)).json()
    assert mine["status"] == "rejected"
    assert mine["rejection_reason"] == "Please link to recordings we can hear."
    assert datetime.fromisoformat(mine["reapply_after"]) == decided + timedelta(days=30)

    early = await client.post("/api/artist-applications", json=APPLICATION, headers=fan)
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"
    problem = early.json()
    assert problem["code"] == "reapply_too_soon"
    assert datetime.fromisoformat(problem["reapply_after"]) == decided + timedelta(days=30)
    retry_after = int(early.headers["retry-after"])
    assert 29 * 86400 < retry_after <= 30 * 86400
    assert len(await applications(engine)) == 1

    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(  # the rejection is now 31 days old
            update(ArtistApplication).values(decided_at=utcnow() - timedelta(days=31))
        )
    later = await apply(client, fan)
    assert later["status"] == "submitted"
    assert len(await applications(engine)) == 2
