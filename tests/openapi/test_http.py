"""What the document promises about the order and shape of answers holds over HTTP: `Allow`
names every method of a path, and a signed-in route answers 401 before anything about the
body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import DEFAULT_PASSWORD

TRACK = "/api/tracks/0b8e5a52-3f1e-4f3c-9a51-8d2f6f3c2a10"


async def bearer(client: httpx.AsyncClient, make_user: Callable[..., Any]) -> dict[str, str]:
    account = await make_user()
    response = await client.post(
        "/api/auth/login", json={"email": account.email, "password": DEFAULT_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/me", "GET, HEAD, PATCH, DELETE"),
        (f"{TRACK}/audio", "POST, PUT"),
        (TRACK, "GET, HEAD, PATCH, DELETE"),
        ("/api/auth/login", "POST"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    response = await client.request("OPTIONS", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body"),
    [
        ("POST", "/api/chat", "application/json", b"{"),
        ("PATCH", "/api/me", "application/json", b'{"display_name": '),
        ("PATCH", TRACK, "text/plain", b"hello"),
        ("POST", "/api/tracks", "application/json", b'{"title": "\\u0000"}'),
        ("POST", f"{TRACK}/upload-url?x=%00", "application/json", b"{}"),
    ],
)
async def test_without_credentials_a_bad_body_is_401_first(
    client: httpx.AsyncClient, method: str, path: str, content_type: str, body: bytes
) -> None:
    response = await client.request(
        method, path, content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthenticated"


async def test_signed_in_the_same_bad_body_is_answered_as_such(
    client: httpx.AsyncClient, make_user: Callable[..., Any]
) -> None:
    headers = {**await bearer(client, make_user), "content-type": "application/json"}
    response = await client.post("/api/chat", content=b"{", headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "malformed_json")
    response = await client.patch("/api/me", json={"display_name": 3}, headers=headers)
    assert response.status_code == 422
    assert response.json()["title"] == "Unprocessable Content"
