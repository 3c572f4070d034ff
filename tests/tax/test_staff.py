"""Staff see a person's form masked; only admins reveal the TIN, and every reveal is audited."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.audit.models import AuditEvent
from backline.db import create_sessionmaker
from tests.tax.conftest import SSN, w9

Person = tuple[str, dict[str, str]]


async def events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.event == name))
        return list(rows.all())


async def test_staff_see_the_form_masked(
    client: httpx.AsyncClient, artist: Person, staff: dict[str, str]
) -> None:
    artist_id, headers = artist
    await client.put("/api/me/tax-form", json=w9(), headers=headers)
    response = await client.get(f"/api/admin/users/{artist_id}/tax-form", headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tin"] == "***-**-7386"
    assert body["user_id"] == artist_id
    assert body["signed_ip"] == "203.0.113.7"
    assert "401527386" not in response.text
    assert SSN not in response.text
    refused = await client.get(f"/api/admin/users/{artist_id}/tax-form", headers=headers)
    assert refused.status_code == 403


async def test_only_admins_reveal_and_each_reveal_is_audited(
    client: httpx.AsyncClient,
    artist: Person,
    staff: dict[str, str],
    admin: Person,
    engine: AsyncEngine,
) -> None:
    artist_id, headers = artist
    admin_id, admin_headers = admin
    await client.put("/api/me/tax-form", json=w9(), headers=headers)
    url = f"/api/admin/users/{artist_id}/tax-form/reveal"
    for someone in (headers, staff):
        response = await client.post(url, headers=someone)
        assert response.status_code == 403
        assert SSN not in response.text
    assert await events(engine, "tax_tin_revealed") == []

    response = await client.post(url, headers={**admin_headers, "X-Request-ID": "reveal-1"})
    assert response.status_code == 200, response.text
    assert response.json()["tin"] == SSN
    assert response.json()["tin_type"] == "ssn"
    await client.post(url, headers={**admin_headers, "X-Request-ID": "reveal-2"})
    audited = await events(engine, "tax_tin_revealed")
    assert sorted(e.request_id or "" for e in audited) == ["reveal-1", "reveal-2"]
    for event in audited:
        assert str(event.user_id) == artist_id
        assert str(event.actor_id) == admin_id
        assert event.created_at is not None
        assert SSN not in str(event.details)
        assert "401527386" not in str(event.details)


async def test_no_form_is_a_404(client: httpx.AsyncClient, artist: Person, admin: Person) -> None:
    artist_id, _ = artist
    for response in (
        await client.get(f"/api/admin/users/{artist_id}/tax-form", headers=admin[1]),
        await client.post(f"/api/admin/users/{artist_id}/tax-form/reveal", headers=admin[1]),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "no_tax_form"
