"""The pages behind email links: nothing happens on opening, the forms do the work."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD, login, outbox, token_in


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)


def hidden_token(page: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def test_the_verification_link_confirms_only_through_its_form(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post(
        "/api/auth/register",
        json={"email": "web@example.com", "password": PASSWORD, "display_name": "Web"},
    )
    link = re.search(
        r"http://127.0.0.1:8000(/verify-email\?token=\S+)",
        (await outbox(engine))[0].text_body or "",
    )
    assert link
    opened = await client.get(link.group(1))
    assert opened.status_code == 200
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert opened.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in opened.headers["content-security-policy"]
    # Opening the page (as a mail scanner would) confirmed nothing.
    unverified = await client.post(
        "/api/auth/login", json={"email": "web@example.com", "password": PASSWORD}
    )
    assert unverified.json()["code"] == "email_not_verified"

    done = await client.post("/verify-email", data={"token": hidden_token(opened.text)})
    assert done.status_code == 200
    assert "is confirmed" in done.text
    assert (await login(client, "web@example.com"))["access_token"]
    again = await client.post("/verify-email", data={"token": hidden_token(opened.text)})
    assert again.status_code == 400
    assert "invalid or has expired" in again.text


async def test_the_reset_page_keeps_the_link_usable_after_a_refused_password(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    token = token_in((await outbox(engine, "password_reset"))[0])
    page = await client.get(f"/reset-password?token={token}")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert hidden_token(page.text) == token

    weak = await client.post(
        "/reset-password",
        data={"token": token, "new_password": "password1", "confirm_password": "password1"},
    )
    assert weak.status_code == 422
    differ = await client.post(
        "/reset-password",
        data={"token": token, "new_password": "one good passphrase", "confirm_password": "other"},
    )
    assert differ.status_code == 422
    new = "a sturdy new passphrase 5"
    done = await client.post(
        "/reset-password", data={"token": token, "new_password": new, "confirm_password": new}
    )
    assert done.status_code == 200
    assert "Password changed" in done.text
    assert (await login(client, "ann@example.com", new))["access_token"]


async def test_pages_escape_what_they_echo(client: httpx.AsyncClient) -> None:
    page = await client.get('/reset-password?token="><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in page.text
