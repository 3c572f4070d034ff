"""Streamed answers: events, keep-alives, the chat's own timeouts, retries, disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from backline.app import Backline
from backline.config import Settings
from tests.chat.conftest import events, live, messages_of, signed_in
from tests.chat.upstream import UPSTREAM_SECRET, Plan, Upstream

App = Callable[[Settings], Backline]


async def _stored(engine: AsyncEngine, role: str = "assistant") -> list[tuple[str, str]]:
    for _ in range(200):  # the answer is stored as the stream ends: wait for it, bounded
        found = [(m.content, m.state) for m in await messages_of(engine) if m.role == role]
        if found:
            return found
        await asyncio.sleep(0.02)
    return []


async def test_a_streamed_answer_sends_deltas_then_a_final_event(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        response = await client.post(
            "/api/chat", json={"message": "Hi"}, headers={**who, "X-Request-ID": "stream-1"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    found = events(response.text)
    assert [d["text"] for name, d in found if name == "delta"] == ["Hello", ", ", "artist", "!"]
    name, done = found[-1]
    assert name == "done"
    assert done["state"] == "complete"
    assert done["usage"] == {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
    assert upstream.seen[-1].headers["x-request-id"] == "stream-1"
    assert upstream.seen[-1].body["stream"] is True
    assert await _stored(engine) == [("Hello, artist!", "complete")]
    assert str((await messages_of(engine))[-1].id) == done["message_id"]


ODD_CHUNKS: list[object] = [
    [],
    "text",
    {"choices": "none"},
    {"choices": [None, 3, {"delta": None}, {"delta": {"content": 7}}, {"delta": {"role": "x"}}]},
    {"usage": {"prompt_tokens": "many", "completion_tokens": None}, "choices": []},
]


async def test_chunks_of_an_odd_shape_are_skipped(
    app_factory: App, chat_settings: Callable[..., Settings], make_user: Any, upstream: Upstream
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(before=ODD_CHUNKS))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    found = events(response.text)
    assert [d["text"] for name, d in found if name == "delta"] == ["Hello", ", ", "artist", "!"]
    assert found[-1][1]["state"] == "complete"
    assert found[-1][1]["usage"]["total_tokens"] == 34  # the well-formed report, the last one


async def test_an_error_object_mid_stream_is_a_clean_error_event(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(before=[{"error": {"message": UPSTREAM_SECRET}}]))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    found = events(response.text)
    assert found[-2] == ("error", {"code": "chat_upstream_error", "detail": found[-2][1]["detail"]})
    assert found[-1][1]["state"] == "cut"
    assert UPSTREAM_SECRET not in response.text


async def test_keep_alives_flow_while_the_provider_is_silent(
    app_factory: App, chat_settings: Callable[..., Settings], make_user: Any, upstream: Upstream
) -> None:
    async with live(app_factory, chat_settings(chat_keepalive=0.1)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(first_delay=0.6))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    found = events(response.text)
    first_delta = next(i for i, (name, _) in enumerate(found) if name == "delta")
    assert ("comment", "keep-alive") in found[:first_delta]
    assert found[-1][1]["state"] == "complete"


async def test_no_first_byte_in_time_cuts_the_answer(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings(chat_first_byte_timeout=1.0)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(stall_after=0))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
        found = events(response.text)
        assert found[-2] == (
            "error",
            {"code": "chat_upstream_timeout", "detail": found[-2][1]["detail"]},
        )
        assert found[-1][1]["state"] == "cut"
        await asyncio.wait_for(upstream.closed_event.wait(), 5)
    assert await _stored(engine) == [("", "cut")]


async def test_a_silent_gap_past_the_idle_limit_cuts_and_keeps_what_was_sent(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings(chat_idle_timeout=1.0)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(stall_after=2))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
        found = events(response.text)
        await asyncio.wait_for(upstream.closed_event.wait(), 5)
    assert [d["text"] for name, d in found if name == "delta"] == ["Hello", ", "]
    assert found[-2][1]["code"] == "chat_upstream_timeout"
    assert found[-1][1]["state"] == "cut"
    assert upstream.closed_by_caller == 1
    assert await _stored(engine) == [("Hello, ", "cut")]


async def test_the_total_limit_ends_an_answer_that_keeps_trickling(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings(chat_total_timeout=1.0)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(tokens=["x"] * 50, gap=0.1))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    found = events(response.text)
    deltas = [d for name, d in found if name == "delta"]
    assert 0 < len(deltas) < 50
    assert found[-1][1]["state"] == "cut"
    assert (await _stored(engine))[0][1] == "cut"


async def test_a_stream_outlives_the_request_deadline(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
) -> None:
    settings = chat_settings(request_timeout=2.0)  # signing in must fit in it, under load too
    async with live(app_factory, settings) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(tokens=["a", "b", "c", "d", "e"], gap=0.8))  # 3.2 s in all
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    found = events(response.text)
    assert [d["text"] for name, d in found if name == "delta"] == ["a", "b", "c", "d", "e"]
    assert found[-1][1]["state"] == "complete"


async def test_failures_before_the_first_byte_are_retried(
    app_factory: App, chat_settings: Callable[..., Settings], make_user: Any, upstream: Upstream
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(status=503), Plan(status=429))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    assert events(response.text)[-1][1]["state"] == "complete"
    assert len(upstream.seen) == 3


async def test_a_stream_cut_after_the_first_byte_is_never_retried(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(cut_after=2))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    found = events(response.text)
    assert found[-2][1]["code"] == "chat_upstream_error"
    assert found[-1][1]["state"] == "cut"
    assert len(upstream.seen) == 1
    assert await _stored(engine) == [("Hello, ", "cut")]


async def test_failing_before_any_byte_is_a_plain_problem(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    async with live(app_factory, chat_settings(chat_max_retries=0)) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(status=500))
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    # The question is kept, and the conversation shows that no answer came.
    stored = [(m.role, m.content, m.state) for m in await messages_of(engine)]
    assert stored == [("user", "Hi", "complete"), ("assistant", "", "cut")]


async def test_a_client_that_leaves_cancels_the_provider_call_at_once(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    # Limits far away and no keep-alive soon: only the disconnect can end the provider call.
    settings = chat_settings(chat_idle_timeout=60, chat_total_timeout=120, chat_keepalive=60)
    async with live(app_factory, settings) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(stall_after=2))
        async with client.stream("POST", "/api/chat", json={"message": "Hi"}, headers=who) as r:
            received = b""
            async for chunk in r.aiter_bytes():
                received += chunk
                if received.count(b"event: delta") >= 2:
                    break
        await asyncio.wait_for(upstream.closed_event.wait(), 5)
        assert upstream.closed_by_caller == 1
        assert await _stored(engine) == [("Hello, ", "cut")]


async def test_a_client_that_leaves_before_the_provider_answers_cancels_the_call(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    import json as jsonlib

    # Limits far away: only the disconnect can end the provider call.
    settings = chat_settings(
        chat_first_byte_timeout=60, chat_idle_timeout=60, chat_total_timeout=120
    )
    async with live(app_factory, settings) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(hold_headers=True))
        body = jsonlib.dumps({"message": "Hi"}).encode()
        _reader, writer = await asyncio.open_connection("127.0.0.1", client.base_url.port)
        writer.write(
            b"POST /api/chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + f"Authorization: {who['Authorization']}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        for _ in range(100):  # bounded: until the provider has the question
            if upstream.seen:
                break
            await asyncio.sleep(0.05)
        assert upstream.seen
        writer.close()
        await asyncio.wait_for(upstream.closed_event.wait(), 5)
        assert upstream.closed_by_caller == 1
        assert await _stored(engine) == [("", "cut")]


async def test_a_client_that_never_reads_is_let_go(
    app_factory: App,
    chat_settings: Callable[..., Settings],
    engine: AsyncEngine,
    make_user: Any,
    upstream: Upstream,
) -> None:
    import json as jsonlib

    settings = chat_settings(chat_idle_timeout=0.5, chat_total_timeout=60)
    async with live(app_factory, settings) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        port = client.base_url.port
        upstream.then(Plan(tokens=["x" * 8192] * 4000))  # far more than socket buffers hold
        body = jsonlib.dumps({"message": "Hi"}).encode()
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + f"Authorization: {who['Authorization']}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        stored = await _stored(engine)  # never reading a byte
        writer.close()
    assert stored
    assert stored[0][1] == "cut"
    assert 0 < len(stored[0][0]) < 8192 * 4000
