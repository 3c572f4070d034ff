"""Chat tokens in the metrics, by direction, as the provider reports them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from backline.app import Backline
from backline.config import Settings
from tests.chat.conftest import live, signed_in
from tests.chat.upstream import Plan, Upstream
from tests.scrape import sample


def tokens() -> tuple[float, float]:
    return (
        sample("backline_chat_tokens_total", direction="prompt"),
        sample("backline_chat_tokens_total", direction="completion"),
    )


async def test_a_whole_answer_counts_its_prompt_and_completion_tokens(
    client: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    who = await signed_in(client, make_user, "ann@example.com")
    upstream.then(Plan(usage=(120, 7)), Plan(usage=None))
    before = tokens()
    for _ in range(2):  # the second answer reports no usage: nothing is counted for it
        answer = await client.post(
            "/api/chat", json={"message": "Hi", "stream": False}, headers=who
        )
        assert answer.status_code == 200, answer.text
    after = tokens()
    assert (after[0] - before[0], after[1] - before[1]) == (120, 7)


async def test_a_streamed_answer_counts_the_usage_of_its_last_chunk(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
) -> None:
    upstream.then(Plan(usage=(55, 9)))
    before = tokens()
    async with live(app_factory, chat_settings()) as client:
        who = await signed_in(client, make_user, "ann@example.com")
        response = await client.post("/api/chat", json={"message": "Hi"}, headers=who)
    assert response.status_code == 200
    after = tokens()
    assert (after[0] - before[0], after[1] - before[1]) == (55, 9)
