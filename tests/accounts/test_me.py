"""The account itself: read, rename, change address, export, delete; roles; the audit log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import AuthSession, Role, User
from backline.audit.models import AuditEvent
from backline.db import create_sessionmaker
from tests.accounts.conftest import PASSWORD, bearer, login, outbox, token_in


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def test_read_and_rename(client: httpx.AsyncClient, make_user: Any) -> None:
    account = await make_user()
    tokens = await login(client, "ann@example.com")
    me = (await client.get("/api/me", headers=bearer(tokens))).json()
    assert me == {
        "id": str(account.user.id),
        "email": "ann@example.com",
        "display_name": "Ann",
        "role": "user",
        "email_verified": True,
        "created_at": me["created_at"],
    }
    renamed = await client.patch(
        "/api/me", json={"display_name": "Ann Lee"}, headers=bearer(tokens)
    )
    assert renamed.json()["display_name"] == "Ann Lee"
    refused = await client.patch("/api/me", json={"role": "admin"}, headers=bearer(tokens))
    assert refused.status_code == 422


async def test_changing_the_address_needs_the_password_and_the_new_inbox(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    no_password = await client.patch(
        "/api/me", json={"email": "new@example.com"}, headers=bearer(tokens)
    )
    assert no_password.status_code == 403
    wrong = await client.patch(
        "/api/me",
        json={"email": "new@example.com", "current_password": "wrong one!!"},
        headers=bearer(tokens),
    )
    assert wrong.status_code == 403
    asked = await client.patch(
        "/api/me",
        json={"email": "New@Example.com", "current_password": PASSWORD},
        headers=bearer(tokens),
    )
    assert asked.status_code == 200
    assert asked.json()["email"] == "ann@example.com"  # unchanged until confirmed
    [notice] = await outbox(engine, "email_change_requested")
    assert notice.to_address == "ann@example.com"  # the old address is told
    [confirm] = await outbox(engine, "verify_email")
    assert confirm.to_address == "new@example.com"
    done = await client.post("/api/auth/verify-email", json={"token": token_in(confirm)})
    assert done.status_code == 200
    assert done.json()["email"] == "new@example.com"
    assert (await login(client, "new@example.com"))["access_token"]


async def test_a_reset_link_sent_to_the_old_address_dies_with_the_change(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("a@example.com")
    asked = await client.post("/api/auth/forgot-password", json={"email": "a@example.com"})
    assert asked.status_code == 202
    [reset] = await outbox(engine, "password_reset")
    assert reset.to_address == "a@example.com"
    tokens = await login(client, "a@example.com")
    changing = await client.patch(
        "/api/me",
        json={"email": "b@example.com", "current_password": PASSWORD},
        headers=bearer(tokens),
    )
    assert changing.status_code == 200
    [confirm] = await outbox(engine, "verify_email")
    done = await client.post("/api/auth/verify-email", json={"token": token_in(confirm)})
    assert done.json()["email"] == "b@example.com"

    late = await client.post(
        "/api/auth/reset-password",
        json={"token": token_in(reset), "new_password": "whoever reads a@ now"},
    )
    assert late.status_code == 400
    assert late.json()["code"] == "invalid_token"
    assert (await login(client, "b@example.com", PASSWORD))["access_token"]
    refused = await client.post(
        "/api/auth/login", json={"email": "b@example.com", "password": "whoever reads a@ now"}
    )
    assert refused.status_code == 401
    # A link asked for the new address still works.
    await client.post("/api/auth/forgot-password", json={"email": "b@example.com"})
    fresh = (await outbox(engine, "password_reset"))[-1]
    assert fresh.to_address == "b@example.com"
    ok = await client.post(
        "/api/auth/reset-password",
        json={"token": token_in(fresh), "new_password": "the owner's new passphrase"},
    )
    assert ok.status_code == 204


async def test_export_holds_everything_about_the_person(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    account = await make_user()
    tokens = await login(client, "ann@example.com")
    export = (await client.get("/api/me/export", headers=bearer(tokens))).json()
    assert export["profile"]["id"] == str(account.user.id)
    assert export["profile"]["email"] == "ann@example.com"
    assert len(export["sessions"]) == 1
    assert [e["event"] for e in export["security_events"]] == ["login_ok"]
    assert "password_hash" not in str(export)
    assert "$argon2" not in str(export)


async def test_deleting_the_account_removes_the_person_and_keeps_a_bare_trail(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    account = await make_user()
    tokens = await login(client, "ann@example.com")
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    wrong = await client.request(
        "DELETE", "/api/me", json={"password": "not my password"}, headers=bearer(tokens)
    )
    assert wrong.status_code == 403
    gone = await client.request(
        "DELETE", "/api/me", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert gone.status_code == 204
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 401
    async with create_sessionmaker(engine)() as session:
        assert await session.get(User, account.user.id) is None
        assert (await session.scalars(select(AuthSession))).all() == []
        events = (await session.scalars(select(AuditEvent))).all()
    assert "account_deleted" in {e.event for e in events}
    assert all("ann@example.com" not in str(e.details) for e in events)
    assert await outbox(engine) == []  # mail to the person is gone too
    again = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert again.status_code == 401


async def test_an_account_removed_behind_the_apps_back_is_signed_out(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    account = await make_user()
    tokens = await login(client, "ann@example.com")
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200
    async with engine.begin() as connection:  # an operator's hand, not the app's DELETE
        await connection.execute(delete(User).where(User.id == account.user.id))
    response = await client.get("/api/me", headers=bearer(tokens))
    assert response.status_code == 401
    # Its sessions went with it; until the revocation cache (up to 1 s) sees that, the
    # missing row answers.
    assert response.json()["code"] in ("invalid_token", "session_revoked")


async def test_roles_guard_staff_and_admin_routes(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("user@example.com")
    staff = await make_user("staff@example.com", role=Role.STAFF, display_name="Staff")
    await make_user("admin@example.com", role=Role.ADMIN, display_name="Admin")
    as_user = await login(client, "user@example.com")
    as_staff = await login(client, "staff@example.com")
    as_admin = await login(client, "admin@example.com")

    denied = await client.get("/api/admin/audit-events", headers=bearer(as_user))
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden_role"
    for tokens in (as_staff, as_admin):
        assert (
            await client.get("/api/admin/audit-events", headers=bearer(tokens))
        ).status_code == 200

    path = f"/api/admin/users/{staff.user.id}/role"
    assert (
        await client.patch(path, json={"role": "artist"}, headers=bearer(as_staff))
    ).status_code == 403
    promoted = await client.patch(path, json={"role": "artist"}, headers=bearer(as_admin))
    assert promoted.json()["role"] == "artist"
    trail = (
        await client.get(
            "/api/admin/audit-events", params={"event": "role_changed"}, headers=bearer(as_admin)
        )
    ).json()["items"]
    assert trail[0]["details"] == {"before": "staff", "after": "artist"}
    assert trail[0]["user_id"] == str(staff.user.id)
    assert trail[0]["request_id"]
    assert trail[0]["ip"] == "203.0.113.7"


async def test_the_audit_log_records_security_events_and_pages(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("admin@example.com", role=Role.ADMIN, display_name="Admin")
    await make_user()
    await client.post("/api/auth/login", json={"email": "ann@example.com", "password": "wrong!!!!"})
    tokens = await login(client, "ann@example.com")
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    await client.post("/api/auth/logout", headers=bearer(tokens))
    admin = await login(client, "admin@example.com")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/api/admin/audit-events", params=params, headers=bearer(admin))
        ).json()
        seen += [item["event"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for event in ("login_failed", "login_ok", "reset_requested", "logout"):
        assert event in seen
    bad = await client.get(
        "/api/admin/audit-events", params={"cursor": "garbage"}, headers=bearer(admin)
    )
    assert bad.status_code == 400
