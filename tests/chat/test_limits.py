"""Per-user message rate and daily token budget, in the shared rate-limit store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backline.app import Backline
from backline.config import Settings
from tests.chat.conftest import CHAT_LIMITS, running, signed_in
from tests.chat.upstream import Plan, Upstream

pytestmark = pytest.mark.usefixtures("one_window")


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url")}


async def test_messages_past_the_rate_are_429_per_user(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
    store: dict[str, Any],
) -> None:
    settings = chat_settings(rate_limits={**CHAT_LIMITS, "chat_message": "2/minute"}, **store)
    async with running(app_factory, settings) as client:
        ann = await signed_in(client, make_user, "ann@example.com")
        bob = await signed_in(client, make_user, "bob@example.com")
        body = {"message": "hi", "stream": False}
        statuses = [
            (await client.post("/api/chat", json=body, headers=ann)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        refused = await client.post("/api/chat", json=body, headers=ann)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) > 0
        assert (await client.post("/api/chat", json=body, headers=bob)).status_code == 200


async def test_the_daily_token_budget_counts_the_providers_usage(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
    store: dict[str, Any],
) -> None:
    # Each answer reports 30 + 4 tokens: the first fits, the second overflows what is left
    # (and fills the budget), the third is refused before reaching the provider.
    settings = chat_settings(rate_limits={**CHAT_LIMITS, "chat_tokens": "40/day"}, **store)
    async with running(app_factory, settings) as client:
        ann = await signed_in(client, make_user, "ann@example.com")
        bob = await signed_in(client, make_user, "bob@example.com")
        body = {"message": "hi", "stream": False}
        assert (await client.post("/api/chat", json=body, headers=ann)).status_code == 200
        assert (await client.post("/api/chat", json=body, headers=ann)).status_code == 200
        refused = await client.post("/api/chat", json=body, headers=ann)
        assert refused.status_code == 429
        assert refused.json()["policy"] == "chat_tokens"
        assert "Retry-After" in refused.headers
        assert len(upstream.seen) == 2
        assert (await client.post("/api/chat", json=body, headers=bob)).status_code == 200


async def test_streamed_answers_count_against_the_budget_too(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
) -> None:
    settings = chat_settings(rate_limits={**CHAT_LIMITS, "chat_tokens": "100/day"})
    async with running(app_factory, settings) as client:
        ann = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(usage=(90, 20)))
        first = await client.post("/api/chat", json={"message": "hi"}, headers=ann)
        assert first.status_code == 200
        refused = await client.post("/api/chat", json={"message": "hi"}, headers=ann)
        assert refused.status_code == 429


async def test_an_answer_without_reported_usage_is_counted_by_estimate(
    app_factory: Callable[[Settings], Backline],
    chat_settings: Callable[..., Settings],
    make_user: Any,
    upstream: Upstream,
) -> None:
    # The system prompt alone is estimated at far more than 100 tokens.
    settings = chat_settings(rate_limits={**CHAT_LIMITS, "chat_tokens": "100/day"})
    async with running(app_factory, settings) as client:
        ann = await signed_in(client, make_user, "ann@example.com")
        upstream.then(Plan(usage=None), Plan(usage=None))
        body = {"message": "hi", "stream": False}
        first = await client.post("/api/chat", json=body, headers=ann)
        assert first.status_code == 200
        assert first.json()["usage"] is None
        assert (await client.post("/api/chat", json=body, headers=ann)).status_code == 429
