"""A person's conversations: pages, reading, renaming, deleting; never anyone else's."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import holdings
from tests.chat.conftest import messages_of, signed_in


async def ask(client: httpx.AsyncClient, who: dict[str, str], message: str, **extra: Any) -> Any:
    response = await client.post(
        "/api/chat", json={"message": message, "stream": False, **extra}, headers=who
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_conversations_come_in_cursor_pages_newest_first(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    ids = [(await ask(client, who, f"Question {n}"))["conversation_id"] for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):  # bounded
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/chat/conversations", params=params, headers=who)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await client.get("/api/chat/conversations", params={"cursor": "nope"}, headers=who)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"


async def test_a_conversation_reads_renames_and_deletes(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    conversation = (await ask(client, who, "How do splits work?"))["conversation_id"]
    url = f"/api/chat/conversations/{conversation}"
    read = (await client.get(url, headers=who)).json()
    assert read["title"] == "How do splits work?"
    assert [(m["role"], m["content"]) for m in read["messages"]] == [
        ("user", "How do splits work?"),
        ("assistant", "Hello, artist!"),
    ]
    renamed = await client.patch(url, json={"title": "  Splits  "}, headers=who)
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Splits"
    assert (await client.patch(url, json={"title": "   "}, headers=who)).status_code == 422
    assert (await client.delete(url, headers=who)).status_code == 204
    assert (await client.get(url, headers=who)).status_code == 404
    assert await messages_of(engine) == []


async def test_nobody_sees_or_touches_another_persons_conversation(
    client: httpx.AsyncClient, make_user: Any, upstream: Any
) -> None:
    ann = await signed_in(client, make_user, "ann@example.com")
    bob = await signed_in(client, make_user, "bob@example.com")
    conversation = (await ask(client, ann, "Ann's private question"))["conversation_id"]
    url = f"/api/chat/conversations/{conversation}"
    listed = (await client.get("/api/chat/conversations", headers=bob)).json()
    assert listed["items"] == []
    for response in (
        await client.get(url, headers=bob),
        await client.patch(url, json={"title": "mine"}, headers=bob),
        await client.delete(url, headers=bob),
        await client.post(
            "/api/chat",
            json={"message": "hi", "conversation_id": conversation, "stream": False},
            headers=bob,
        ),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "conversation_not_found"
    # Ann's conversation is untouched, and none of it reached the provider on Bob's behalf.
    assert (await client.get(url, headers=ann)).json()["title"] == "Ann's private question"
    assert all("Ann's private" not in str(s.body) for s in upstream.seen[1:])


async def test_conversations_need_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/chat/conversations")).status_code == 401
    assert (await client.post("/api/chat", json={"message": "hi"})).status_code == 401


def test_the_application_registers_the_chat_domain() -> None:
    import backline.app  # noqa: F401 - the import registers each domain

    assert "chat" in holdings.names()


async def test_export_holds_the_conversations_and_deletion_removes_them(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    ann = await signed_in(client, make_user, "ann@example.com")
    bob = await signed_in(client, make_user, "bob@example.com")
    await ask(client, ann, "About ISRC codes")
    await ask(client, bob, "Bob's question")
    exported = (await client.get("/api/me/export", headers=ann)).json()["chat"]
    assert [c["title"] for c in exported] == ["About ISRC codes"]
    assert [m["content"] for m in exported[0]["messages"]] == ["About ISRC codes", "Hello, artist!"]
    from tests.conftest import DEFAULT_PASSWORD

    deleted = await client.request(
        "DELETE", "/api/me", json={"password": DEFAULT_PASSWORD}, headers=ann
    )
    assert deleted.status_code in (200, 202, 204), deleted.text
    left = [m.content for m in await messages_of(engine)]
    assert left == ["Bob's question", "Hello, artist!"]
