"""Every account endpoint answers hostile input with a clear 4xx problem, never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.db import create_sessionmaker
from tests.accounts.conftest import bearer, login

ENDPOINTS = [
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/verify-email"),
    ("POST", "/api/auth/resend-verification"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/forgot-password"),
    ("POST", "/api/auth/reset-password"),
    ("POST", "/api/auth/change-password"),
    ("PATCH", "/api/me"),
    ("DELETE", "/api/me"),
    ("DELETE", "/api/auth/sessions/not-a-uuid"),
    ("PATCH", "/api/admin/users/00000000-0000-4000-8000-000000000000/role"),
]
JSON = {"Content-Type": "application/json"}
HOSTILE: list[Any] = [
    {},
    [],
    "a string",
    12,
    None,
    {"email": 5, "password": [], "display_name": {}, "token": 7, "new_password": None},
    {"email": "x" * 10_240, "password": "p" * 10_240, "display_name": "d", "token": "t" * 5000},
    {"email": "a\u0000b@example.com", "password": "nul\u0000byte", "display_name": "n\u0000"},
    {  # fullwidth letters, a right-to-left override
        "email": "\uff41\uff44\uff4d\uff49\uff4e@example.com",
        "password": "p\u00e4ssw\u00f6rd \uff46\uff55\uff4c\uff4c",
        "display_name": "\u202e",
    },
    {"email": "\ud800@example.com", "password": "lone \udfff surrogate", "display_name": "\ud800"},
    {"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "new_password": "x" * 20},
    {"token": "../../etc/passwd", "refresh_token": "garbage", "role": "god"},
    {"refresh_token": 12345, "mode": "sideways"},
]


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def test_hostile_bodies_are_4xx_problems(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    for method, path in ENDPOINTS:
        for body in HOSTILE:
            for headers in ({}, bearer(tokens)):
                response = await client.request(  # escaped: lone surrogates survive
                    method, path, content=json.dumps(body), headers={**JSON, **headers}
                )
                where = (method, path, body, response.text)
                assert response.status_code < 500, where
                if response.status_code >= 400:
                    assert response.headers["content-type"] == "application/problem+json", where
                    assert response.json()["code"], where
                else:  # only an empty change to the own profile is acceptable input here
                    assert (method, path, body) == ("PATCH", "/api/me", {}), where
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200
