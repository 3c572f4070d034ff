"""Request IDs: accepted when sane, generated otherwise, returned on every response, logged."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import LogCapture

GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_a_request_without_id_gets_a_generated_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert GENERATED.fullmatch(response.headers["x-request-id"])
    again = await client.get("/healthz")
    assert again.headers["x-request-id"] != response.headers["x-request-id"]


@pytest.mark.parametrize("sane", ["abc", "A.b_c-9", "x" * 128, "0b4f5c1e-5a5e-4d0e"])
async def test_a_sane_id_is_echoed(client: httpx.AsyncClient, sane: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": sane})
    assert response.headers["x-request-id"] == sane


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 129,
        "y" * 10_240,
        "evil\tid",
        "a b",
        "id;drop",
        "ünï",
        "",
        "../../etc",
    ],
)
async def test_a_hostile_id_is_replaced(client: httpx.AsyncClient, hostile: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": hostile.encode("utf-8")})
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_control_characters_never_reach_the_response(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers=[(b"X-Request-ID", b"abc\x00\x01\x7f")])
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("DELETE", "/healthz", 405), ("GET", "/test/boom", 500)],
)
async def test_error_responses_carry_the_id_too(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, headers={"X-Request-ID": "err-42"})
    assert response.status_code == status
    assert response.headers["x-request-id"] == "err-42"
    assert response.json()["request_id"] == "err-42"


async def test_one_access_line_per_request(client: httpx.AsyncClient, logs: LogCapture) -> None:
    await client.get("/test/slow?seconds=0", headers={"X-Request-ID": "acc-1"})
    await client.get("/no/such/page?token=abc", headers={"X-Request-ID": "acc-2"})
    lines = logs.named("request")
    assert [line["request_id"] for line in lines] == ["acc-1", "acc-2"]
    first, second = lines
    assert first["method"] == "GET"
    assert first["route"] == "/test/slow"
    assert first["status"] == 200
    assert isinstance(first["duration_ms"], float)
    assert first["logger"] == "backline.access"
    assert second["route"] == "<unmatched>"
    assert second["status"] == 404
    assert "token=abc" not in logs.text


async def test_the_access_line_names_the_user_when_known(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await client.get("/test/whoami")
    [line] = logs.named("request")
    assert line["user_id"] == "0b4f5c1e-5a5e-4d0e-9d43-6f7c1f3f0a11"
    await client.get("/healthz")
    assert "user_id" not in logs.named("request")[1]


async def test_an_answer_before_the_body_was_read_closes_the_connection(
    client: httpx.AsyncClient,
) -> None:
    too_large = b'{"email": "' + b"a" * (1024 * 1024 + 1) + b'"}'
    refused = await client.post(
        "/api/auth/login", content=too_large, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413
    assert refused.headers["connection"] == "close"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(too_large), 64 * 1024):
            yield too_large[start : start + 64 * 1024]

    streamed = await client.post(
        "/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.headers["connection"] == "close"


async def test_an_answer_after_the_whole_body_keeps_the_connection(
    client: httpx.AsyncClient,
) -> None:
    read = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "not it at all"}
    )
    assert read.status_code == 401
    assert "connection" not in read.headers
    assert "connection" not in (await client.get("/healthz")).headers
