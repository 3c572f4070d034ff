"""Staff review: the queue, claiming, approving and rejecting with emails to the artist."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from tests.accounts.conftest import bearer, login, outbox
from tests.tracks.conftest import COMPLETE, draft, upload_cover, wav


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
async def people(client: httpx.AsyncClient, make_user: Any) -> dict[str, dict[str, str]]:
    await make_user("artist@example.com", role=Role.ARTIST, display_name="Artist")
    await make_user("staff@example.com", role=Role.STAFF, display_name="Staff")
    await make_user("fan@example.com", display_name="Fan")
    return {
        name: bearer(await login(client, f"{name}@example.com"))
        for name in ("artist", "staff", "fan")
    }


async def submitted(client: httpx.AsyncClient, artist: dict[str, str], title: str = "Song") -> str:
    track = await draft(client, artist, title=title, **COMPLETE)
    await client.put(
        f"/api/tracks/{track['id']}/audio",
        content=wav(),
        headers={"Content-Type": "audio/wav", **artist},
    )
    await upload_cover(client, artist, track["id"])
    response = await client.post(f"/api/tracks/{track['id']}/submit", headers=artist)
    assert response.status_code == 200, response.text
    track_id: str = track["id"]
    return track_id


async def test_the_queue_is_for_staff_and_lists_submissions(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    first = await submitted(client, people["artist"], "One")
    second = await submitted(client, people["artist"], "Two")
    await draft(client, people["artist"], title="Not yet")
    denied = await client.get("/api/admin/tracks", headers=people["fan"])
    assert denied.status_code == 403
    queue = (await client.get("/api/admin/tracks", headers=people["staff"])).json()
    assert {item["id"] for item in queue["items"]} == {first, second}
    page = (
        await client.get("/api/admin/tracks", params={"limit": 1}, headers=people["staff"])
    ).json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    drafts = (
        await client.get("/api/admin/tracks", params={"status": "draft"}, headers=people["staff"])
    ).json()
    assert [item["title"] for item in drafts["items"]] == ["Not yet"]
    seen = await client.get(f"/api/tracks/{first}", headers=people["staff"])
    assert seen.status_code == 200  # staff may read any track
    link = await client.get(f"/api/tracks/{first}/audio-url", headers=people["staff"])
    assert link.status_code == 200


async def test_the_queue_filters_and_pages_oldest_first(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], make_user: Any
) -> None:
    staff = people["staff"]
    one = await submitted(client, people["artist"], "Blue 100%")
    two = await submitted(client, people["artist"], "Red")
    await make_user("second@example.com", role=Role.ARTIST, display_name="Second")
    other_artist = bearer(await login(client, "second@example.com"))
    three = await submitted(client, other_artist, "Blue Too")
    await client.post(f"/api/admin/tracks/{two}/claim", headers=staff)  # now in review

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/admin/tracks", params=params, headers=staff)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [one, three]  # submitted, oldest first
    assert await ids(order="newest") == [three, one]
    assert await ids(q="blue") == [one, three]
    assert await ids(q="100%") == [one]  # a wildcard character is matched literally
    assert await ids(q="%") == [one]
    assert await ids(status="in_review") == [two]
    me = (await client.get("/api/me", headers=staff)).json()["id"]
    assert await ids(status="in_review", reviewer_id=me) == [two]
    artist_id = (await client.get("/api/me", headers=other_artist)).json()["id"]
    assert await ids(artist_id=artist_id) == [three]
    assert await ids(genre="rock") == [one, three]  # COMPLETE's genre, any case
    assert await ids(genre="Jazz") == []
    assert await ids(explicit="false", language="en") == [one, three]
    assert await ids(explicit="true") == []
    first_page = (await client.get("/api/admin/tracks", params={"limit": 1}, headers=staff)).json()
    assert [item["id"] for item in first_page["items"]] == [one]
    second_page = await ids(limit=1, cursor=first_page["next_cursor"])
    assert second_page == [three]
    for bad in ({"language": "english"}, {"status": "lost"}, {"q": "x" * 101}, {"order": "up"}):
        refused = await client.get("/api/admin/tracks", params=bad, headers=staff)
        assert refused.status_code == 422, bad


async def test_approve_mails_the_artist(
    client: httpx.AsyncClient, engine: AsyncEngine, people: dict[str, dict[str, str]]
) -> None:
    track = await submitted(client, people["artist"])
    claimed = await client.post(f"/api/admin/tracks/{track}/claim", headers=people["staff"])
    assert claimed.json()["status"] == "in_review"
    approved = await client.post(f"/api/admin/tracks/{track}/approve", headers=people["staff"])
    assert approved.json()["status"] == "approved"
    [mail] = await outbox(engine, "track_approved")
    assert mail.to_address == "artist@example.com"
    assert "Song" in mail.subject
    again = await client.post(f"/api/admin/tracks/{track}/approve", headers=people["staff"])
    assert again.status_code == 409
    assert again.json()["code"] == "not_reviewable"


async def test_reject_needs_a_reason_and_reopens_the_track(
    client: httpx.AsyncClient, engine: AsyncEngine, people: dict[str, dict[str, str]]
) -> None:
    track = await submitted(client, people["artist"])
    no_reason = await client.post(
        f"/api/admin/tracks/{track}/reject", json={}, headers=people["staff"]
    )
    assert no_reason.status_code == 422
    rejected = await client.post(
        f"/api/admin/tracks/{track}/reject",
        json={"reason": "The mix clips at 2:10."},
        headers=people["staff"],
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["rejection_reason"] == "The mix clips at 2:10."
    [mail] = await outbox(engine, "track_rejected")
    assert "The mix clips at 2:10." in (mail.text_body or "")
    fixed = await client.patch(
        f"/api/tracks/{track}", json={"title": "Song (fixed)"}, headers=people["artist"]
    )
    assert fixed.status_code == 200
    resubmitted = await client.post(f"/api/tracks/{track}/submit", headers=people["artist"])
    assert resubmitted.json()["status"] == "submitted"
    assert resubmitted.json()["rejection_reason"] is None


async def test_drafts_cannot_be_reviewed(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    track = await draft(client, people["artist"])
    response = await client.post(
        f"/api/admin/tracks/{track['id']}/approve", headers=people["staff"]
    )
    assert response.status_code == 409
    missing = await client.post(
        "/api/admin/tracks/00000000-0000-4000-8000-000000000000/approve", headers=people["staff"]
    )
    assert missing.status_code == 404


async def test_artwork_is_public_once_approved_and_only_then(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    from tests.tracks.conftest import cover

    track = await submitted(client, people["artist"])
    hidden = await client.get(f"/public/artwork/{track}")
    assert hidden.status_code == 404  # submitted is not public yet
    assert (
        await client.post(f"/api/admin/tracks/{track}/approve", headers=people["staff"])
    ).is_success
    shown = await client.get(f"/public/artwork/{track}")  # no credentials at all
    assert shown.status_code == 200
    assert shown.content == cover()
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["cache-control"].startswith("public")
    again = await client.get(
        f"/public/artwork/{track}", headers={"If-None-Match": shown.headers["etag"]}
    )
    assert again.status_code == 304
    audio = await client.get(f"/public/artwork/{track}".replace("artwork", "audio"))
    assert audio.status_code == 404  # audio is never public
