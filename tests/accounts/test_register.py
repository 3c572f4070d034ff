"""Registration and email verification: no enumeration, single-use expiring tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.db import create_sessionmaker, utcnow
from tests.accounts.conftest import PASSWORD, outbox, token_in


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def users(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def same(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code
    assert a.json() == b.json()


async def test_register_answers_alike_whether_or_not_the_address_is_taken(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("taken@example.com")
    new = await client.post(
        "/api/auth/register",
        json={"email": "fresh@example.com", "password": PASSWORD, "display_name": "Fresh"},
    )
    taken = await client.post(
        "/api/auth/register",
        json={"email": "Taken@Example.com", "password": PASSWORD, "display_name": "Other"},
    )
    assert new.status_code == 202
    same(new, taken)
    assert await users(engine) == 2
    [verify] = await outbox(engine, "verify_email")
    assert verify.to_address == "fresh@example.com"
    [notice] = await outbox(engine, "signup_attempt")
    assert notice.to_address == "taken@example.com"


async def test_a_weak_password_is_refused_alike_for_new_and_known_addresses(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("taken@example.com")
    responses = [
        await client.post(
            "/api/auth/register",
            json={"email": email, "password": "password1", "display_name": "X"},
        )
        for email in ("fresh@example.com", "taken@example.com")
    ]
    for response in responses:
        assert response.status_code == 422
        assert response.json()["code"] == "weak_password"


async def test_verification_link_works_once_and_unlocks_login(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post(
        "/api/auth/register",
        json={"email": "new@example.com", "password": PASSWORD, "display_name": "New"},
    )
    refused = await client.post(
        "/api/auth/login", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "email_not_verified"
    wrong = await client.post(
        "/api/auth/login", json={"email": "new@example.com", "password": "not the password!"}
    )
    assert wrong.json()["code"] == "invalid_credentials"  # unverified is told only after a match

    [message] = await outbox(engine, "verify_email")
    assert "http://127.0.0.1:8000/verify-email?token=" in (message.text_body or "")
    token = token_in(message)
    verified = await client.post("/api/auth/verify-email", json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["email_verified"] is True
    again = await client.post("/api/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_token"
    ok = await client.post(
        "/api/auth/login", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert ok.status_code == 200


async def test_verification_expires_after_a_day(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post(
        "/api/auth/register",
        json={"email": "late@example.com", "password": PASSWORD, "display_name": "Late"},
    )
    token = token_in((await outbox(engine, "verify_email"))[0])
    with time_machine.travel(utcnow() + timedelta(hours=24, minutes=1), tick=False):
        late = await client.post("/api/auth/verify-email", json={"token": token})
    assert late.status_code == 400
    assert late.json()["code"] == "invalid_token"


async def test_resend_is_alike_for_anyone_and_voids_the_older_link(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.post(
        "/api/auth/register",
        json={"email": "re@example.com", "password": PASSWORD, "display_name": "Re"},
    )
    first = token_in((await outbox(engine, "verify_email"))[0])
    known = await client.post("/api/auth/resend-verification", json={"email": "re@example.com"})
    unknown = await client.post("/api/auth/resend-verification", json={"email": "no@example.com"})
    invalid = await client.post("/api/auth/resend-verification", json={"email": "not an email"})
    assert known.status_code == 202
    same(known, unknown)
    same(known, invalid)
    messages = await outbox(engine, "verify_email")
    assert len(messages) == 2
    assert (await client.post("/api/auth/verify-email", json={"token": first})).status_code == 400
    second = token_in(messages[1])
    assert (await client.post("/api/auth/verify-email", json={"token": second})).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"email": "x" * 10_000 + "@example.com", "password": PASSWORD, "display_name": "X"},
        {"email": "a@example.com", "password": PASSWORD},
        {"email": 5, "password": PASSWORD, "display_name": "X"},
        {"email": "a@example.com", "password": PASSWORD, "display_name": "X", "role": "admin"},
        {"email": "a\u0000@example.com", "password": PASSWORD, "display_name": "X"},
        {"email": "\u0430dmin@example.com", "password": PASSWORD, "display_name": "X"},
    ],
)
async def test_bad_registrations_are_4xx_and_write_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any]
) -> None:
    response = await client.post("/api/auth/register", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await users(engine) == 0
    assert await outbox(engine) == []


def _blank_name(email: str) -> dict[str, Any]:
    return {"email": email, "password": PASSWORD, "display_name": " "}


INVALID_REGISTRATIONS: dict[str, Callable[[str], dict[str, Any]]] = {
    "blank name": _blank_name,
    "ideographic blank name": lambda e: {**_blank_name(e), "display_name": "\u3000 "},
    "name with a line break": lambda e: {
        **_blank_name(e),
        "display_name": "Ann\nhttps://x.example",
    },
    "name with a bidi override": lambda e: {**_blank_name(e), "display_name": "Ann \u202egnp.exe"},
    "name with a zero-width joiner": lambda e: {**_blank_name(e), "display_name": "An\u200dn"},
    "empty name": lambda e: {**_blank_name(e), "display_name": ""},
    "name too long": lambda e: {**_blank_name(e), "display_name": "n" * 101},
    "weak password": lambda e: {**_blank_name(e), "password": "password1", "display_name": "X"},
    "short password": lambda e: {**_blank_name(e), "password": "short", "display_name": "X"},
    "long password": lambda e: {**_blank_name(e), "password": "p" * 129, "display_name": "X"},
    "password of the address": lambda e: {**_blank_name(e), "password": e, "display_name": "X"},
    "bad email syntax": lambda e: {**_blank_name(e), "email": e + ".", "display_name": "X"},
    "email with a NUL": lambda e: {**_blank_name(e), "email": e + "\x00", "display_name": "X"},
    "unknown field": lambda e: {**_blank_name(e), "display_name": "X", "role": "admin"},
}


@pytest.mark.parametrize("kind", sorted(INVALID_REGISTRATIONS))
async def test_invalid_input_is_refused_alike_for_known_and_unknown_addresses(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any, kind: str
) -> None:
    await make_user("taken@example.com", display_name="Taken")
    build = INVALID_REGISTRATIONS[kind]
    known = await client.post("/api/auth/register", json=build("taken@example.com"))
    unknown = await client.post("/api/auth/register", json=build("fresh@example.com"))
    assert 400 <= known.status_code < 500, known.text
    assert known.headers["content-type"] == "application/problem+json"
    assert known.status_code == unknown.status_code
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(known) == strip(unknown)
    assert await users(engine) == 1
    assert await outbox(engine) == []  # not even the notice to the owner of the known address
