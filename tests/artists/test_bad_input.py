"""Hostile or mistaken applications: each a 4xx problem with a stable code, nothing stored,
nothing mailed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.accounts.conftest import bearer, login, outbox
from tests.artists.conftest import APPLICATION, applications

LINK = "https://example.com/"


def links(count: int, samples: int = 0) -> list[dict[str, Any]]:
    return [{"url": f"{LINK}{i}", "sample": i < samples} for i in range(count)]


# (changes to a valid application, the HTTP status, the problem's code, an error's type)
CASES: list[tuple[dict[str, Any], int, str, str | None]] = [
    ({"artist_name": 7}, 422, "validation_failed", "string_type"),
    ({"artist_name": ""}, 422, "validation_failed", "string_too_short"),
    ({"artist_name": "   "}, 422, "validation_failed", "string_too_short"),
    ({"artist_name": "x" * 101}, 422, "validation_failed", "string_too_long"),
    ({"artist_name": "Two\nLines"}, 422, "validation_failed", "control_character"),
    ({"artist_name": "Bell\u0007"}, 422, "validation_failed", "control_character"),
    ({"artist_name": "Nul\u0000"}, 422, "nul_character", None),
    ({"bio": "b" * 10_240}, 422, "validation_failed", "string_too_long"),
    ({"bio": "Nul\u0000byte"}, 422, "nul_character", None),
    ({"bio": None}, 422, "validation_failed", "string_type"),
    ({"genres": ["polka"]}, 422, "validation_failed", "enum"),
    ({"genres": "rock"}, 422, "validation_failed", "list_type"),
    (
        {"genres": ["rock", "pop", "jazz", "funk", "soul", "blues"]},
        422,
        "validation_failed",
        "too_long",
    ),
    ({"country": "XX"}, 422, "validation_failed", "unknown_country"),
    ({"country": "GBR"}, 422, "validation_failed", "string_too_long"),
    ({"country": 44}, 422, "validation_failed", "string_type"),
    ({"links": [{"url": "javascript:alert(1)"}]}, 422, "validation_failed", "url_scheme"),
    (
        {"links": [{"url": "JavaScript://x.example/%0aalert(1)"}]},
        422,
        "validation_failed",
        "url_scheme",
    ),
    ({"links": [{"url": "data:text/html,hi"}]}, 422, "validation_failed", "url_scheme"),
    ({"links": [{"url": "ftp://files.example/a"}]}, 422, "validation_failed", "url_scheme"),
    ({"links": [{"url": "https://"}]}, 422, "validation_failed", "url_parsing"),
    (
        {"links": [{"url": "https://user:pw@example.com/"}]},
        422,
        "validation_failed",
        "url_credentials",
    ),
    ({"links": [{"url": LINK, "sample": "yes"}]}, 422, "validation_failed", "bool_type"),
    ({"links": [{"url": LINK, "extra": 1}]}, 422, "validation_failed", "extra_forbidden"),
    ({"links": [LINK]}, 422, "validation_failed", "model_attributes_type"),
    ({"links": [{"url": LINK}, {"url": LINK}]}, 422, "validation_failed", "duplicate_link"),
    ({"links": links(11)}, 422, "validation_failed", "too_long"),
    ({"links": links(5, samples=4)}, 422, "validation_failed", "too_many_samples"),
    ({"role": "artist"}, 422, "validation_failed", "extra_forbidden"),
    ({"status": "approved"}, 422, "validation_failed", "extra_forbidden"),
]


@pytest.fixture
async def fan(client: httpx.AsyncClient, make_user: Any) -> dict[str, str]:
    await make_user("fan@example.com")
    return bearer(await login(client, "fan@example.com"))


@pytest.mark.parametrize(("changes", "status", "code", "error"), CASES)
async def test_bad_applications_are_refused_whole(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    fan: dict[str, str],
    changes: dict[str, Any],
    status: int,
    code: str,
    error: str | None,
) -> None:
    response = await client.post(
        "/api/artist-applications", json={**APPLICATION, **changes}, headers=fan
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    if error is not None:
        assert error in [e["type"] for e in problem["errors"]], problem
    assert await applications(engine) == []
    assert await outbox(engine) == []


@pytest.mark.parametrize("field", ["artist_name", "bio"])
async def test_each_required_field_is_required(
    client: httpx.AsyncClient, engine: AsyncEngine, fan: dict[str, str], field: str
) -> None:
    body = {name: value for name, value in APPLICATION.items() if name != field}
    response = await client.post("/api/artist-applications", json=body, headers=fan)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == [field]
    assert await applications(engine) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'"text"',
        b"{",
        json.dumps({**APPLICATION, "artist_name": "\\ud800"}).encode().replace(b"\\\\", b"\\"),
    ],
)
async def test_malformed_bodies_are_4xx(
    client: httpx.AsyncClient, engine: AsyncEngine, fan: dict[str, str], raw: bytes
) -> None:
    response = await client.post(
        "/api/artist-applications",
        content=raw,
        headers={**fan, "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await applications(engine) == []


async def test_the_limits_themselves_are_accepted(
    client: httpx.AsyncClient, engine: AsyncEngine, fan: dict[str, str]
) -> None:
    response = await client.post(
        "/api/artist-applications",
        json={
            **APPLICATION,
            "artist_name": "n" * 100,
            "bio": "Line one.\nLine two.\t" + "b" * 1980,
            "genres": ["rock", "pop", "jazz", "funk", "soul"],
            "links": links(10, samples=3),
        },
        headers=fan,
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["bio"]) == 2000
    [stored] = await applications(engine)
    assert sum(link["sample"] for link in stored.links) == 3
