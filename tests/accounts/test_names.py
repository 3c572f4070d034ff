"""Display names: visible text only, the same rule at sign-up and on change; no unconfirmed
name in mail to an unconfirmed address."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.email.message import build_mime
from backline.email.models import OutboxEmail
from backline.email.service import outgoing
from tests.accounts.conftest import PASSWORD, bearer, login, outbox


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


REFUSED = [
    " ",
    "\u3000 ",
    "Ann\nVisit https://evil.example",
    "Ann\r\nBcc: victim@evil.example",
    "Ann\tLee",
    "Ann\x07",
    "Ann\x85Lee",
    "Ann\u2028Lee",
    "Ann \u202egnp.exe",
    "\u202aAnn",
    "\u2066Ann\u2069",
    "\u200fAnn",
    "An\u200bn",
    "An\u200dn",
    "Ann\ufeff",
    "Ann\ue000",
]

ACCEPTED = ["Zoë O'Brien-Lee", "李小龍", "Anna 🎸", "Band (live) — https://band.example", "  Ann  "]


@pytest.mark.parametrize("name", REFUSED)
async def test_names_with_invisible_or_control_characters_are_refused_everywhere(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any, name: str
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    signing_up = await client.post(
        "/api/auth/register",
        json={"email": "new@example.com", "password": PASSWORD, "display_name": name},
    )
    renaming = await client.patch("/api/me", json={"display_name": name}, headers=bearer(tokens))
    for refused in (signing_up, renaming):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "invalid_display_name"
    me = (await client.get("/api/me", headers=bearer(tokens))).json()
    assert me["display_name"] == "Ann"
    assert await outbox(engine) == []


async def test_a_refused_name_leaves_an_email_change_in_the_same_request_undone(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    refused = await client.patch(
        "/api/me",
        json={"display_name": "A\u202en", "email": "new@example.com", "current_password": PASSWORD},
        headers=bearer(tokens),
    )
    assert refused.json()["code"] == "invalid_display_name"
    assert await outbox(engine) == []


@pytest.mark.parametrize("name", ACCEPTED)
async def test_visible_names_are_kept_as_typed_without_surrounding_space(
    client: httpx.AsyncClient, make_user: Any, name: str
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    renamed = await client.patch("/api/me", json={"display_name": name}, headers=bearer(tokens))
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["display_name"] == name.strip()


NAME = "Win a prize at https://evil.example"


def assert_nameless(message: OutboxEmail) -> None:
    """Neither the stored row nor the message as sent carries the name."""
    assert message.to_name is None
    for part in (message.subject, message.text_body or "", message.html_body or ""):
        assert "evil.example" not in part
        assert "prize" not in part
    mime = build_mime(outgoing(message), sender="Backline <a@backline.example>", domain="x")
    assert str(mime["To"]) == message.to_address
    assert "evil.example" not in mime.as_string()


async def test_mail_to_an_unconfirmed_address_at_sign_up_carries_no_name(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = {"email": "stranger@example.com", "password": PASSWORD, "display_name": NAME}
    assert (await client.post("/api/auth/register", json=body)).status_code == 202
    [verify] = await outbox(engine, "verify_email")
    assert_nameless(verify)
    assert "Hello," in (verify.text_body or "")
    # Whoever tries the address again, the unverified account's owner is not greeted by name.
    again = {**body, "display_name": "Someone"}
    assert (await client.post("/api/auth/register", json=again)).status_code == 202
    await client.post("/api/auth/forgot-password", json={"email": "stranger@example.com"})
    await client.post("/api/auth/resend-verification", json={"email": "stranger@example.com"})
    sent = await outbox(engine)
    assert {m.template for m in sent} == {"verify_email", "signup_attempt", "password_reset"}
    for message in sent:
        assert_nameless(message)


async def test_the_confirmation_of_a_new_address_carries_no_name(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user(display_name=NAME)
    tokens = await login(client, "ann@example.com")
    asked = await client.patch(
        "/api/me",
        json={"email": "stranger@example.com", "current_password": PASSWORD},
        headers=bearer(tokens),
    )
    assert asked.status_code == 200
    [confirm] = await outbox(engine, "verify_email")
    assert confirm.to_address == "stranger@example.com"
    assert_nameless(confirm)
    [notice] = await outbox(engine, "email_change_requested")
    assert notice.to_address == "ann@example.com"  # the verified owner is still greeted by name
    assert notice.to_name == NAME
    assert NAME in (notice.text_body or "")
