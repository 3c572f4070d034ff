"""Every error is problem+json with a stable code, and bad input never writes anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.config import Settings
from backline.email.models import OutboxEmail
from tests.served import SERVERS, create_user, served

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}
VALID = {"email": "ann@example.com", "display_name": "Ann", "age": 30}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, max_json_body=4096)


async def users(engine: AsyncEngine) -> int:
    """Rows written by the probe endpoint: users plus their queued emails."""
    async with engine.connect() as connection:
        total = 0
        for model in (User, OutboxEmail):
            query = select(func.count()).select_from(model)
            total += int((await connection.execute(query)).scalar_one())
        return total


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:backline:problem:{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["title"]
    assert body["detail"]
    return body


async def chunks(data: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_the_probe_endpoint_writes_on_valid_input(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post("/test/signup", json=VALID)
    assert response.status_code == 201
    assert await users(engine) == 2  # the user and the verification email


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b'{"email": "a@b.c", ', {"content-type": "application/json"}, 400, "malformed_json"),
        (b"not json at all", {"content-type": "application/json"}, 400, "malformed_json"),
        (b'{"email": "\xff\xfe"}', {"content-type": "application/json"}, 400, "invalid_encoding"),
        (b'{"email": "a@b.c"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (
            b"email=a@b.c",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b'{"email": "a@b.c"}', {}, 415, "unsupported_media_type"),
        (
            b'{"email": "ann@example.com", "display_name": "Ann"}',
            {"content-type": "application/json"},
            422,
            "validation_failed",
        ),
        (
            b'{"email": "ann@example.com", "display_name": "Ann", "age": "old"}',
            {"content-type": "application/json"},
            422,
            "validation_failed",
        ),
        (b"[1, 2, 3]", {"content-type": "application/json"}, 422, "validation_failed"),
        (
            b'{"email": "' + b"a" * 8000 + b'@x.com", "display_name": "A", "age": 1}',
            {"content-type": "application/json"},
            413,
            "payload_too_large",
        ),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await client.post("/test/signup", content=content, headers=headers)
    assert_problem(response, status, code)
    assert await users(engine) == 0


async def test_an_oversized_streamed_body_is_cut_off_at_the_cap(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = b'{"email": "' + b"a" * 20_000 + b'"}'
    response = await client.post(
        "/test/signup", content=chunks(body), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert await users(engine) == 0


async def test_an_oversized_body_to_an_unknown_route_is_still_a_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/nowhere", content=b"x" * 10_000)
    assert_problem(response, 413, "payload_too_large")


async def test_validation_errors_name_fields_but_never_echo_values(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/test/signup",
        json={"email": "ann@example.com", "display_name": "", "age": "hunter2-secret"},
    )
    body = assert_problem(response, 422, "validation_failed")
    locations = {tuple(error["loc"]) for error in body["errors"]}
    assert locations == {("display_name",), ("age",)}
    assert "hunter2-secret" not in response.text
    assert "input" not in body["errors"][0]


async def test_a_failure_after_writing_rolls_the_write_back(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post("/test/signup-then-fail", json=VALID)
    body = assert_problem(response, 500, "internal_error")
    assert "Traceback" not in response.text
    assert "failed after writing" not in response.text
    assert body["detail"] == "Something went wrong on our side."
    assert await users(engine) == 0


async def test_a_service_conflict_is_a_problem_with_its_own_code(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    assert (await client.post("/test/signup", json=VALID)).status_code == 201
    response = await client.post("/test/signup", json={**VALID, "email": "ANN@example.com"})
    assert_problem(response, 409, "email_taken")
    assert await users(engine) == 2


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/thing", 404, "not_found"),
        ("PUT", "/healthz", 405, "method_not_allowed"),
        ("GET", "/test/limited", 429, "rate_limited"),
        ("GET", "/test/boom", 500, "internal_error"),
    ],
)
async def test_every_error_status_has_the_problem_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, status, code)
    if status == 405:
        assert response.headers["allow"] == "GET, HEAD"
    if status == 429:
        assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**VALID, "email": "not-an-email"}, "invalid_email"),
        ({**VALID, "email": "x" * 300 + "@example.com"}, "invalid_email"),
        ({**VALID, "email": "ann@exam\u2024ple.com"}, "invalid_email"),
        ({**VALID, "display_name": "   "}, "invalid_display_name"),
        ({**VALID, "display_name": "A\u0000B"}, "nul_character"),
        ({**VALID, "email": "a\u0000@example.com"}, "nul_character"),
        (
            {"email": "a@example.com", "display_name": "A", "age": 1, "x": {"k\u0000": 1}},
            "nul_character",
        ),
    ],
)
async def test_rule_violations_are_422_on_every_database(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    any_database_url: str,
    body: dict[str, Any],
    code: str,
) -> None:
    from asgi_lifespan import LifespanManager

    app = app_factory(make_settings(database_url=any_database_url))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post("/test/signup", json=body)
    assert_problem(response, 422, code)


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"age": ' + b"9" * 5000 + b"}"],
    ids=["deeply-nested", "huge-number"],
)
async def test_unparseable_json_is_malformed_not_an_encoding_error(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    content: bytes,
) -> None:
    from asgi_lifespan import LifespanManager

    app = app_factory(make_settings(database_url=database_url))  # the default 1 MiB cap
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post(
            "/test/signup", content=content, headers={"content-type": "application/json"}
        )
    assert_problem(response, 400, "malformed_json")


def _without_request_id(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    return body


@pytest.mark.slow
@pytest.mark.parametrize("server_name", SERVERS)
def test_one_413_whichever_limit_refuses_and_however_the_body_is_sent(
    tmp_path: Path, server_name: str
) -> None:
    body = b'{"email": "' + b"a" * 20_000 + b'"}'

    def chunked() -> Iterator[bytes]:
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    with served(
        tmp_path,
        server=server_name,
        BACKLINE_ENV="test",
        BACKLINE_MAX_JSON_BODY="4096",
        BACKLINE_MAX_AUDIO_BYTES="2048",
    ) as server:
        artist = create_user(server, "artist@example.com", role="artist")
        json_headers = {"Content-Type": "application/json"}
        with httpx.Client(base_url=server.url, timeout=10) as client:
            sized = client.post("/api/auth/login", content=body, headers=json_headers)
            streamed = client.post("/api/auth/login", content=chunked(), headers=json_headers)
            track = client.post("/api/tracks", json={"title": "Song"}, headers=artist).json()
            upload = client.put(
                f"/api/tracks/{track['id']}/audio",
                content=b"\x00" * 10_000,
                headers={"Content-Type": "audio/wav", **artist},
            )

    assert "content-length" in sized.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    for response in (sized, streamed, upload):
        assert_problem(response, 413, "payload_too_large")
    expected = {
        "type": "urn:backline:problem:payload_too_large",
        "title": "Content Too Large",
        "status": 413,
        "detail": "The content is larger than this endpoint accepts: at most 4096 bytes.",
        "code": "payload_too_large",
        "max_bytes": 4096,
    }
    assert _without_request_id(sized) == expected
    assert _without_request_id(streamed) == expected
    assert sized.content.replace(sized.headers["x-request-id"].encode(), b"") == (
        streamed.content.replace(streamed.headers["x-request-id"].encode(), b"")
    )
    assert _without_request_id(upload) == {
        **expected,
        "detail": "The content is larger than this endpoint accepts: at most 2048 bytes.",
        "max_bytes": 2048,
    }
