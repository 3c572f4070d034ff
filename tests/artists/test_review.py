"""Staff review: the queue, claiming, approving (the applicant becomes an artist at once) and
rejecting, each emailed and audited with the reviewer and the request ID."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from tests.accounts.conftest import bearer, login, outbox
from tests.artists.conftest import applications, apply, audit_events


@pytest.fixture
async def people(client: httpx.AsyncClient, make_user: Any) -> dict[str, dict[str, str]]:
    await make_user("fan@example.com", display_name="Fan")
    await make_user("staff@example.com", role=Role.STAFF, display_name="Staff")
    await make_user("admin@example.com", role=Role.ADMIN, display_name="Admin")
    return {
        name: bearer(await login(client, f"{name}@example.com"))
        for name in ("fan", "staff", "admin")
    }


async def applicant(client: httpx.AsyncClient, make_user: Any, email: str) -> dict[str, str]:
    await make_user(email, display_name=email.split("@")[0])
    return bearer(await login(client, email))


async def test_the_queue_is_staff_only_oldest_first_searchable_and_paged(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], make_user: Any
) -> None:
    one = await apply(client, people["fan"], artist_name="Blue 100% Band")
    two = await apply(
        client, await applicant(client, make_user, "red@example.com"), artist_name="Red"
    )
    three = await apply(
        client, await applicant(client, make_user, "Blue.Fan@example.com"), artist_name="Quiet"
    )
    denied = await client.get("/api/admin/artist-applications", headers=people["fan"])
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden_role"

    async def ids(who: str = "staff", **params: Any) -> list[str]:
        response = await client.get(
            "/api/admin/artist-applications", params=params, headers=people[who]
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [one["id"], two["id"], three["id"]]
    assert await ids("admin") == [one["id"], two["id"], three["id"]]  # admins are staff too
    assert await ids(q="BLUE") == [one["id"], three["id"]]  # the name, or the email
    assert await ids(q="blue.fan@") == [three["id"]]
    assert await ids(q="100%") == [one["id"]]  # wildcards are matched literally
    assert await ids(q="_") == []
    await client.post(f"/api/admin/artist-applications/{two['id']}/claim", headers=people["staff"])
    assert await ids() == [one["id"], three["id"]]
    assert await ids(status="in_review") == [two["id"]]
    assert await ids(status="approved") == []

    first = (
        await client.get(
            "/api/admin/artist-applications", params={"limit": 1}, headers=people["staff"]
        )
    ).json()
    assert [item["id"] for item in first["items"]] == [one["id"]]
    assert first["items"][0]["applicant"]["email"] == "fan@example.com"
    assert await ids(limit=1, cursor=first["next_cursor"]) == [three["id"]]
    last = (
        await client.get(
            "/api/admin/artist-applications",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=people["staff"],
        )
    ).json()
    assert last["next_cursor"] is None
    for bad in ({"status": "lost"}, {"q": "x" * 101}, {"limit": 0}, {"cursor": "nope"}):
        refused = await client.get(
            "/api/admin/artist-applications", params=bad, headers=people["staff"]
        )
        assert refused.status_code in (400, 422), bad
        assert refused.headers["content-type"] == "application/problem+json"


async def test_claiming_records_the_reviewer(
    client: httpx.AsyncClient, engine: AsyncEngine, people: dict[str, dict[str, str]]
) -> None:
    created = await apply(client, people["fan"])
    path = f"/api/admin/artist-applications/{created['id']}"
    claimed = await client.post(f"{path}/claim", headers=people["staff"])
    assert claimed.status_code == 200
    staff_id = (await client.get("/api/me", headers=people["staff"])).json()["id"]
    assert claimed.json()["status"] == "in_review"
    assert claimed.json()["reviewer_id"] == staff_id
    again = await client.post(f"{path}/claim", headers=people["staff"])
    assert again.status_code == 200  # the same reviewer: nothing changes
    taken = await client.post(f"{path}/claim", headers=people["admin"])
    assert taken.status_code == 409
    assert taken.json()["code"] == "already_claimed"
    shown = await client.get(path, headers=people["staff"])
    assert shown.json()["claimed_at"] is not None
    events = await audit_events(engine)
    assert [e.event for e in events] == [
        "artist_application_submitted",
        "artist_application_claimed",
    ]
    missing = await client.post(
        "/api/admin/artist-applications/00000000-0000-4000-8000-000000000000/claim",
        headers=people["staff"],
    )
    assert missing.status_code == 404


async def test_approval_makes_an_artist_whose_existing_token_works_at_once(
    client: httpx.AsyncClient, engine: AsyncEngine, people: dict[str, dict[str, str]]
) -> None:
    fan = people["fan"]  # an access token issued before the approval
    created = await apply(client, fan)
    before = await client.post("/api/tracks", json={"title": "First"}, headers=fan)
    assert before.status_code == 403
    path = f"/api/admin/artist-applications/{created['id']}"
    await client.post(f"{path}/claim", headers=people["staff"])
    approved = await client.post(
        f"{path}/approve", headers={**people["staff"], "X-Request-ID": "approve-req-1"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["applicant"]["role"] == "artist"
    after = await client.post("/api/tracks", json={"title": "First"}, headers=fan)
    assert after.status_code == 201, after.text
    assert (await client.get("/api/me", headers=fan)).json()["role"] == "artist"

    [mail] = await outbox(engine, "application_approved")
    assert mail.to_address == "fan@example.com"
    assert "The Night Owls" in (mail.text_body or "")
    assert mail.request_id == "approve-req-1"
    decided = (await audit_events(engine))[-1]
    staff_id = (await client.get("/api/me", headers=people["staff"])).json()["id"]
    fan_id = (await client.get("/api/me", headers=fan)).json()["id"]
    assert decided.event == "artist_application_approved"
    assert decided.request_id == "approve-req-1"
    assert str(decided.actor_id) == staff_id
    assert str(decided.user_id) == fan_id
    assert decided.details == {
        "application_id": created["id"],
        "role_before": "user",
        "role_after": "artist",
    }
    again = await client.post(
        f"{path}/reject", json={"reason": "Changed my mind"}, headers=people["staff"]
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_decided"
    assert again.json()["application_status"] == "approved"
    assert len(await outbox(engine, "application_rejected")) == 0


async def test_rejection_needs_a_reason_which_the_applicant_sees_and_is_mailed(
    client: httpx.AsyncClient, engine: AsyncEngine, people: dict[str, dict[str, str]]
) -> None:
    created = await apply(client, people["fan"])
    path = f"/api/admin/artist-applications/{created['id']}/reject"
    for body in ({}, {"reason": "  "}, {"reason": "x" * 1001}, {"reason": 7}):
        refused = await client.post(path, json=body, headers=people["staff"])
        assert refused.status_code == 422, body
    assert (await applications(engine))[0].status == "submitted"
    rejected = await client.post(
        path,
        json={"reason": "  We could not hear any music.  "},
        headers={**people["staff"], "X-Request-ID": "reject-req-1"},
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["rejection_reason"] == "We could not hear any music."
    assert rejected.json()["applicant"]["role"] == "user"
    mine = (await client.get("/api/artist-applications/me", headers=people["fan"])).json()
    assert mine["rejection_reason"] == "We could not hear any music."
    [mail] = await outbox(engine, "application_rejected")
    assert "We could not hear any music." in (mail.text_body or "")
    assert mine["reapply_after"][:10] in (mail.text_body or "")
    [event] = await audit_events(engine, "artist_application_rejected")
    assert event.request_id == "reject-req-1"
    assert event.details == {"application_id": created["id"]}  # no reason, no name: ids only
    fan_tracks = await client.post("/api/tracks", json={"title": "x"}, headers=people["fan"])
    assert fan_tracks.status_code == 403


async def test_non_staff_cannot_review(
    client: httpx.AsyncClient, engine: AsyncEngine, people: dict[str, dict[str, str]]
) -> None:
    created = await apply(client, people["fan"])
    for action in ("claim", "approve"):
        refused = await client.post(
            f"/api/admin/artist-applications/{created['id']}/{action}", headers=people["fan"]
        )
        assert refused.status_code == 403
    assert (await applications(engine))[0].status == "submitted"
