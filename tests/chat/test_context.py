"""What the provider is sent: the system prompt with the user's own statuses, in a budget."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from backline.artists.models import ArtistApplication
from backline.chat import context
from backline.db import create_sessionmaker
from backline.tracks.models import Track
from tests.chat.conftest import signed_in
from tests.chat.upstream import Upstream


async def test_the_system_prompt_holds_the_users_own_statuses_only(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any, upstream: Upstream
) -> None:
    ann = await signed_in(client, make_user, "ann@example.com")
    await make_user("bob@example.com", role=Role.ARTIST)
    async with create_sessionmaker(engine)() as session, session.begin():
        from sqlalchemy import select

        from backline.accounts.models import User

        users = {u.email: u for u in (await session.scalars(select(User))).all()}
        session.add(
            ArtistApplication(
                user_id=users["ann@example.com"].id,
                artist_name="Ann",
                bio="b",
                status="rejected",
                rejection_reason="Add a sample recording.",
            )
        )
        session.add(Track(owner_id=users["ann@example.com"].id, title="Ann Song", status="draft"))
        session.add(
            Track(owner_id=users["bob@example.com"].id, title="Bob Secret", status="approved")
        )
    response = await client.post(
        "/api/chat", json={"message": "Status?", "stream": False}, headers=ann
    )
    assert response.status_code == 200
    system = upstream.seen[-1].body["messages"][0]
    assert system["role"] == "system"
    assert (
        "Artist application: rejected (reason given: Add a sample recording.)" in system["content"]
    )
    assert 'Track "Ann Song": draft' in system["content"]
    assert "Bob Secret" not in system["content"]
    assert "ISRC" in system["content"]  # the guidelines from the template


def test_the_oldest_turns_go_first_and_the_system_prompt_never() -> None:
    system = "S" * 400  # about 104 tokens
    turns = [("user", f"old {n} " + "x" * 400) for n in range(10)]
    kept = context.fit(system, turns, "new question", budget=400)
    assert kept[0] == {"role": "system", "content": system}
    assert kept[-1] == {"role": "user", "content": "new question"}
    middle = [m["content"] for m in kept[1:-1]]
    assert middle == [t[1] for t in turns[-len(middle) :]]  # the newest ones, in order
    assert 0 < len(middle) < 10
    tiny = context.fit(system, turns, "new question", budget=10)
    assert [m["role"] for m in tiny] == ["system", "user"]


def test_the_template_is_versioned() -> None:
    assert context.PROMPT_VERSION == "v1"
    assert "$statuses" in context.template("v1").template
