"""A person's artist applications in their account export, and gone with their account."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import holdings
from backline.accounts.models import Role
from tests.accounts.conftest import bearer, login
from tests.artists.conftest import applications, apply, audit_events
from tests.conftest import DEFAULT_PASSWORD as PASSWORD


def test_the_application_registers_the_artists_domain() -> None:
    import backline.app  # noqa: F401 - the import registers each domain

    assert "artist_applications" in holdings.names()


async def test_export_lists_every_application_with_states_reasons_and_dates(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("fan@example.com")
    await make_user("staff@example.com", role=Role.STAFF)
    fan = bearer(await login(client, "fan@example.com"))
    staff = bearer(await login(client, "staff@example.com"))
    empty = (await client.get("/api/me/export", headers=fan)).json()
    assert empty["artist_applications"] == []
    first = await apply(client, fan, artist_name="First Try")
    await client.post("/api/artist-applications/me/withdraw", headers=fan)
    second = await apply(client, fan, artist_name="Second Try")
    await client.post(
        f"/api/admin/artist-applications/{second['id']}/reject",
        json={"reason": "No recordings yet."},
        headers=staff,
    )
    exported = (await client.get("/api/me/export", headers=fan)).json()["artist_applications"]
    assert [(a["id"], a["artist_name"], a["status"]) for a in exported] == [
        (first["id"], "First Try", "withdrawn"),
        (second["id"], "Second Try", "rejected"),
    ]
    assert exported[0]["withdrawn_at"] is not None
    assert exported[1]["rejection_reason"] == "No recordings yet."
    assert exported[1]["decided_at"] is not None
    assert exported[1]["links"] == second["links"]
    assert {"created_at", "bio", "genres", "country"} <= set(exported[1])
    staff_export = (await client.get("/api/me/export", headers=staff)).json()
    assert staff_export["artist_applications"] == []  # reviewing is not applying


async def test_deleting_the_account_removes_its_applications_and_keeps_bare_audit_ids(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("fan@example.com")
    await make_user("other@example.com")
    fan = bearer(await login(client, "fan@example.com"))
    other = bearer(await login(client, "other@example.com"))
    mine = await apply(client, fan, artist_name="Going Soon")
    kept = await apply(client, other, artist_name="Staying")
    deleted = await client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=fan)
    assert deleted.status_code == 204, deleted.text
    assert [a.id.hex for a in await applications(engine)] == [kept["id"].replace("-", "")]
    events = await audit_events(engine)
    ids = [event.details["application_id"] for event in events]
    assert ids == [mine["id"], kept["id"]]
    assert all("Going Soon" not in str(event.details) for event in events)
