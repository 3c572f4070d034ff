"""Registering passkeys, managing them, and signing in with one, as token and as cookies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import AuthSession
from backline.audit.models import AuditEvent
from backline.db import create_sessionmaker
from backline.passkeys.models import Passkey
from tests.conftest import DEFAULT_PASSWORD
from tests.passkeys.authenticator import Authenticator, b64url
from tests.passkeys.conftest import RP_ID, add_passkey, sign_in_options, signed_in


async def events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.event == name))
        return list(rows.all())


async def passkeys(engine: AsyncEngine) -> list[Passkey]:
    async with create_sessionmaker(engine)() as session:
        return list((await session.scalars(select(Passkey))).all())


async def test_register_several_list_rename_remove(
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    ann = await make_user("ann@example.com")
    headers = await signed_in(client, ann.email)
    options = (await client.post("/api/me/passkeys/options", headers=headers)).json()
    assert options["rp"] == {"id": RP_ID, "name": "Backline"}
    assert options["user"]["name"] == "ann@example.com"
    assert options["excludeCredentials"] == []
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["timeout"] == 300000

    first, laptop = await add_passkey(client, headers, authenticator, "Laptop")
    assert laptop["name"] == "Laptop"
    assert laptop["last_used_at"] is None
    assert set(laptop) == {"id", "name", "created_at", "last_used_at"}  # no key material
    # The next options exclude what the account has, so an authenticator is not added twice.
    again = (await client.post("/api/me/passkeys/options", headers=headers)).json()
    assert [c["id"] for c in again["excludeCredentials"]] == [first.id]
    _, phone = await add_passkey(client, headers, authenticator, "  Phone  ")

    listed = (await client.get("/api/me/passkeys", headers=headers)).json()["items"]
    assert [p["name"] for p in listed] == ["Laptop", "Phone"]
    renamed = await client.patch(
        f"/api/me/passkeys/{phone['id']}", headers=headers, json={"name": "Old phone"}
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Old phone"
    bad_name = await client.patch(
        f"/api/me/passkeys/{phone['id']}", headers=headers, json={"name": "a\u202eb"}
    )
    assert bad_name.status_code == 422
    assert bad_name.json()["code"] == "invalid_passkey_name"

    # Another person sees none of them and cannot touch them: 404, as for no passkey at all.
    bob = await make_user("bob@example.com")
    bob_headers = await signed_in(client, bob.email)
    assert (await client.get("/api/me/passkeys", headers=bob_headers)).json()["items"] == []
    for method, extra in (("PATCH", {"json": {"name": "mine"}}), ("DELETE", {})):
        answer = await client.request(
            method, f"/api/me/passkeys/{laptop['id']}", headers=bob_headers, **extra
        )
        assert answer.status_code == 404
        assert answer.json()["code"] == "passkey_not_found"

    removed = await client.delete(f"/api/me/passkeys/{phone['id']}", headers=headers)
    assert removed.status_code == 204
    assert [p.name for p in await passkeys(engine)] == ["Laptop"]
    assert len(await events(engine, "passkey_added")) == 2
    assert len(await events(engine, "passkey_removed")) == 1


async def test_sign_in_with_a_passkey_opens_a_session_like_a_password(
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    ann = await make_user("ann@example.com")
    credential, laptop = await add_passkey(
        client, await signed_in(client, ann.email), authenticator
    )

    options = await sign_in_options(client)  # no address: a discoverable credential
    assert options["rpId"] == RP_ID
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required"
    answer = await client.post(
        "/api/auth/passkeys/verify", json={"credential": authenticator.get(options)}
    )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["refresh_token"]
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"
    # The refresh token works as a password sign-in's does.
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200

    [stored] = await passkeys(engine)
    assert stored.sign_count == credential.counter == 1
    assert stored.last_used_at is not None
    [event] = [e for e in await events(engine, "login_ok") if e.details["method"] == "passkey"]
    assert event.details["method"] == "passkey"
    assert event.details["passkey_id"] == laptop["id"]
    assert event.user_id == ann.user.id

    # With the address given, the account's own passkey is accepted too.
    options = await sign_in_options(client, "ANN@example.com")
    assert options["allowCredentials"] == []  # nothing listed: no hint of who has passkeys
    answer = await client.post(
        "/api/auth/passkeys/verify",
        json={"credential": authenticator.get(options, user_handle=False)},
    )
    assert answer.status_code == 200, answer.text


async def test_cookie_mode_sets_the_browser_session(
    client: httpx.AsyncClient, make_user: Callable[..., Any], authenticator: Authenticator
) -> None:
    ann = await make_user("ann@example.com")
    await add_passkey(client, await signed_in(client, ann.email), authenticator)
    options = await sign_in_options(client)
    answer = await client.post(
        "/api/auth/passkeys/verify",
        json={"credential": authenticator.get(options), "mode": "cookie"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["access_token"] is None
    assert body["refresh_token"] is None
    assert body["csrf_token"] == answer.cookies["backline_csrf"]
    assert {"backline_access", "backline_refresh"} <= set(answer.cookies)
    access = answer.cookies["backline_access"]  # Secure outside development: sent by hand
    me = await client.get("/api/me", headers={"Cookie": f"backline_access={access}"})
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"


async def test_a_counter_that_stays_zero_is_accepted(
    client: httpx.AsyncClient, make_user: Callable[..., Any], engine: AsyncEngine
) -> None:
    """Many platform passkeys never count (always 0): that alone is no clone."""
    authenticator = Authenticator(origin="https://backline.example", counting=False)
    ann = await make_user("ann@example.com")
    await add_passkey(client, await signed_in(client, ann.email), authenticator)
    for _ in range(2):
        options = await sign_in_options(client)
        answer = await client.post(
            "/api/auth/passkeys/verify", json={"credential": authenticator.get(options)}
        )
        assert answer.status_code == 200, answer.text
    assert [p.sign_count for p in await passkeys(engine)] == [0]


async def test_export_lists_passkeys_and_deletion_removes_them(
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    ann = await make_user("ann@example.com")
    headers = await signed_in(client, ann.email)
    await add_passkey(client, headers, authenticator, "Laptop")
    exported = (await client.get("/api/me/export", headers=headers)).json()
    [item] = exported["passkeys"]
    assert item["name"] == "Laptop"
    assert item["last_used_at"] is None
    assert set(item) == {"id", "name", "created_at", "last_used_at"}
    text = str(exported)
    assert authenticator.credentials[0].id not in text
    assert "public_key" not in text

    deleted = await client.request(
        "DELETE", "/api/me", headers=headers, json={"password": DEFAULT_PASSWORD}
    )
    assert deleted.status_code == 204
    assert await passkeys(engine) == []
    # The passkey of a deleted account signs nobody in.
    options = await sign_in_options(client)
    answer = await client.post(
        "/api/auth/passkeys/verify", json={"credential": authenticator.get(options)}
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "unknown_credential"
    async with create_sessionmaker(engine)() as session:
        assert (
            await session.scalar(select(func.count()).select_from(AuthSession)) == 0
        )  # none opened


def test_the_helper_encodes_base64url_without_padding() -> None:
    assert b64url(b"\xff\xfe") == "__4"
