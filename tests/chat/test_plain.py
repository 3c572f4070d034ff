"""`POST /api/chat` with `stream: false`: configuration, request ids, stored messages, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.app import Backline
from backline.chat.models import ChatMessage, Conversation
from backline.config import Settings
from backline.db import create_sessionmaker
from tests.chat.conftest import API_KEY, running, signed_in
from tests.chat.upstream import UPSTREAM_SECRET, Plan, Upstream
from tests.conftest import LogCapture


async def stored(engine: AsyncEngine) -> tuple[list[Conversation], list[ChatMessage]]:
    async with create_sessionmaker(engine)() as session:
        conversations = (await session.scalars(select(Conversation))).all()
        query = select(ChatMessage).order_by(ChatMessage.created_at, ChatMessage.id)
        return list(conversations), list((await session.scalars(query)).all())


async def test_not_configured_is_503_naming_the_variable(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
) -> None:
    async with running(app_factory, make_settings(database_url=database_url)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        response = await client.post("/api/chat", json={"message": "hi"}, headers=who)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "chat_not_configured"
    assert "BACKLINE_CHAT_BASE_URL" in response.json()["detail"]


async def test_a_model_is_needed_too(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
) -> None:
    async with running(app_factory, chat_settings(chat_model=None)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        response = await client.post("/api/chat", json={"message": "hi"}, headers=who)
    assert response.status_code == 503
    assert response.json()["variable"] == "BACKLINE_CHAT_MODEL"


async def test_an_answer_is_stored_with_its_question_and_usage(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
    logs: LogCapture,
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    response = await client.post(
        "/api/chat",
        json={"message": "How do I apply?", "stream": False},
        headers={**who, "X-Request-ID": "chat-req-42"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"] == "Hello, artist!"
    assert body["state"] == "complete"
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
    # Our request id went upstream, with the key, and the model asked for.
    seen = upstream.seen[-1]
    assert seen.headers["x-request-id"] == "chat-req-42"
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.body["model"] == "test-model"
    assert seen.body["messages"][0]["role"] == "system"
    assert seen.body["messages"][-1] == {"role": "user", "content": "How do I apply?"}
    # The provider's own id is logged beside ours.
    line = next(e for e in logs.named("chat_upstream"))
    assert line["upstream_request_id"] == "upstream-req-1"
    assert line["request_id"] == "chat-req-42"
    conversations, messages = await stored(engine)
    assert [c.id for c in conversations] == [__import__("uuid").UUID(body["conversation_id"])]
    assert conversations[0].title == "How do I apply?"
    assert [(m.role, m.content, m.state) for m in messages] == [
        ("user", "How do I apply?", "complete"),
        ("assistant", "Hello, artist!", "complete"),
    ]
    assert str(messages[1].id) == body["message_id"]
    assert (messages[1].prompt_tokens, messages[1].completion_tokens) == (30, 4)


async def test_a_follow_up_carries_the_earlier_turns(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    first = await client.post("/api/chat", json={"message": "One", "stream": False}, headers=who)
    conversation = first.json()["conversation_id"]
    second = await client.post(
        "/api/chat",
        json={"message": "Two", "stream": False, "conversation_id": conversation},
        headers=who,
    )
    assert second.json()["conversation_id"] == conversation
    sent = [(m["role"], m["content"]) for m in upstream.seen[-1].body["messages"][1:]]
    assert sent == [("user", "One"), ("assistant", "Hello, artist!"), ("user", "Two")]


async def test_provider_errors_are_502_after_retries_and_leak_nothing(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream, logs: LogCapture
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    upstream.then(Plan(status=500), Plan(status=500), Plan(status=500))
    response = await client.post("/api/chat", json={"message": "hi", "stream": False}, headers=who)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "chat_upstream_error"
    assert len(upstream.seen) == 3  # the first try and two retries (BACKLINE_CHAT_MAX_RETRIES)
    for text in (response.text, logs.text):
        assert UPSTREAM_SECRET not in text
        assert API_KEY not in text
    failed = logs.named("chat_upstream_failed")[-1]
    assert failed["upstream_status"] == 500
    assert failed["upstream_request_id"] == "upstream-err-1"


async def test_a_failed_answer_keeps_the_question_and_says_none_came(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    first = await client.post("/api/chat", json={"message": "One", "stream": False}, headers=who)
    conversation = first.json()["conversation_id"]
    upstream.then(Plan(status=500), Plan(status=500), Plan(status=500))
    body = {"message": "Two", "stream": False, "conversation_id": conversation}
    failed = await client.post("/api/chat", json=body, headers=who)
    assert failed.status_code == 502
    shown = (await client.get(f"/api/chat/conversations/{conversation}", headers=who)).json()
    assert [(m["role"], m["content"], m["state"]) for m in shown["messages"]] == [
        ("user", "One", "complete"),
        ("assistant", "Hello, artist!", "complete"),
        ("user", "Two", "complete"),
        ("assistant", "", "cut"),
    ]
    # Asked again, the provider is sent the question that failed but no empty answer.
    body["message"] = "Two, again"
    again = await client.post("/api/chat", json=body, headers=who)
    assert again.status_code == 200
    sent = [(m["role"], m["content"]) for m in upstream.seen[-1].body["messages"][1:]]
    assert sent == [
        ("user", "One"),
        ("assistant", "Hello, artist!"),
        ("user", "Two"),
        ("user", "Two, again"),
    ]


async def test_a_429_is_retried_then_answered(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    upstream.then(Plan(status=429))
    response = await client.post("/api/chat", json={"message": "hi", "stream": False}, headers=who)
    assert response.status_code == 200
    assert len(upstream.seen) == 2
    assert all(
        s.headers["x-request-id"] == upstream.seen[0].headers["x-request-id"] for s in upstream.seen
    )


async def test_a_client_error_from_the_provider_is_not_retried(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    upstream.then(Plan(status=401))
    response = await client.post("/api/chat", json={"message": "hi", "stream": False}, headers=who)
    assert response.status_code == 502
    assert len(upstream.seen) == 1


async def test_a_slow_provider_is_504(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
) -> None:
    settings = chat_settings(chat_timeout=0.3, chat_max_retries=0)
    async with running(app_factory, settings) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(first_delay=2.0))
        response = await client.post(
            "/api/chat", json={"message": "hi", "stream": False}, headers=who
        )
    assert response.status_code == 504
    assert response.json()["code"] == "chat_upstream_timeout"


async def test_an_unreachable_provider_is_502(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    async with running(app_factory, chat_settings(chat_base_url=dead, chat_max_retries=0)) as c:
        who = await signed_in(c, make_user, "ann@example.com")
        response = await c.post("/api/chat", json={"message": "hi", "stream": False}, headers=who)
    assert response.status_code == 502
    assert response.json()["code"] == "chat_upstream_error"


async def test_the_key_is_in_no_response_and_no_log_line(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream, logs: LogCapture
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    upstream.then(Plan(status=401), Plan(status=400), Plan(status=500), Plan(status=500))
    texts: list[str] = []
    for body in (
        {"message": "a", "stream": False},  # 401 upstream
        {"message": "b", "stream": False},  # 400 upstream
        {"message": "c"},  # 500, retried, then answered
        {"message": "d"},
        {"message": ""},
    ):
        response = await client.post("/api/chat", json=body, headers=who)
        texts.append(response.text + str(response.headers))
    listing = await client.get("/api/chat/conversations", headers=who)
    texts.append(listing.text + str(listing.headers))
    export = await client.get("/api/me/export", headers=who)
    texts.append(export.text)
    assert logs.text.count("\n") > 10
    for text in [*texts, *logs.text.splitlines()]:
        assert API_KEY not in text
        assert UPSTREAM_SECRET not in text
