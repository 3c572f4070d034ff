"""Passkey tests: every one on SQLite and on PostgreSQL, with the software authenticator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login
from tests.passkeys.authenticator import Authenticator, Credential

ORIGIN = "https://backline.example"
RP_ID = "backline.example"
LIMITS = {
    **GENEROUS_LIMITS,
    "passkey_login": "100000/minute",
    "passkey_register": "100000/hour",
    "mfa_verify": "100000/minute",
    "mfa_passkey": "100000/minute",
    "mfa_manage": "100000/minute",
}


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url,
        public_url=ORIGIN,
        rate_limits=LIMITS,
        mfa_required_roles="staff,admin",
    )


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator(origin=ORIGIN)


async def signed_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    return bearer(await login(client, email))


async def add_passkey(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    authenticator: Authenticator,
    name: str = "Laptop",
) -> tuple[Credential, dict[str, Any]]:
    options = await client.post("/api/me/passkeys/options", headers=headers)
    assert options.status_code == 200, options.text
    credential, created = authenticator.create(options.json())
    answer = await client.post(
        "/api/me/passkeys", headers=headers, json={"name": name, "credential": created}
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return credential, body


async def sign_in_options(client: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    body = {"email": email} if email is not None else {}
    answer = await client.post("/api/auth/passkeys/options", json=body)
    assert answer.status_code == 200, answer.text
    options: dict[str, Any] = answer.json()
    return options
