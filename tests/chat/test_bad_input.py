"""Bad chat requests get a clear 4xx problem, never a 500, and leave nothing stored."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chat.conftest import API_KEY, messages_of, signed_in
from tests.chat.upstream import Upstream
from tests.conftest import LogCapture


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"message": ""}, "message_empty"),
        ({"message": "   \n "}, "message_empty"),
        ({"message": "x" * 100_000}, "message_too_long"),
        ({"message": "hi", "stream": "yes"}, "validation_failed"),
        ({"message": "hi", "stream": 1}, "validation_failed"),
        ({"message": 42}, "validation_failed"),
        ({}, "validation_failed"),
        ({"message": "hi", "conversation_id": "not-a-uuid"}, "validation_failed"),
        ({"message": "hi", "conversation_id": str(uuid.uuid4())}, "conversation_not_found"),
    ],
)
async def test_bad_chat_requests_are_refused_clearly(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
    logs: LogCapture,
    body: dict[str, Any],
    code: str,
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    response = await client.post("/api/chat", json=body, headers=who)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert upstream.seen == []
    assert await messages_of(engine) == []
    assert API_KEY not in logs.text


async def test_malformed_ids_in_the_path_are_422(client: httpx.AsyncClient, make_user: Any) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    response = await client.get("/api/chat/conversations/123", headers=who)
    assert response.status_code == 422


async def test_a_non_json_body_is_415(client: httpx.AsyncClient, make_user: Any) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    response = await client.post(
        "/api/chat", content=b"message=hi", headers={**who, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
