"""Shared by the assistant tests: a stand-in provider, settings pointing at it, people."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login
from tests.chat.upstream import Upstream, serve
from tests.conftest import free_port

API_KEY = "sk-test-key-that-must-never-leak-0123456789"
CHAT_LIMITS = {**GENEROUS_LIMITS, "chat_message": "100000/minute", "chat_tokens": "10000000/day"}


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    provider = Upstream()
    server, task = await serve(provider, free_port())
    yield provider
    server.should_exit = True
    await task


@pytest.fixture
def chat_settings(
    make_settings: Callable[..., Settings], database_url: str, upstream: Upstream
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "rate_limits": CHAT_LIMITS,
            "chat_base_url": upstream.url,
            "chat_model": "test-model",
            "chat_api_key": API_KEY,
            "chat_first_byte_timeout": 5.0,
            "chat_idle_timeout": 5.0,
            "chat_total_timeout": 10.0,
            "chat_timeout": 5.0,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
def settings(chat_settings: Callable[..., Settings]) -> Settings:
    return chat_settings()


@asynccontextmanager
async def running(
    app_factory: Callable[[Settings], Backline], settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own (other settings), with a client."""
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def signed_in(client: httpx.AsyncClient, make_user: Any, email: str) -> dict[str, str]:
    await make_user(email)
    return bearer(await login(client, email))


def events(text: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a server-sent event stream; comments as ("comment", text)."""
    import json

    found: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        if block.startswith(":"):
            found.append(("comment", block[1:].strip()))
            continue
        name, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        found.append((name, json.loads(data)))
    return found


@asynccontextmanager
async def live(
    app_factory: Callable[[Settings], Backline], settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app under a real uvicorn server on loopback (streams arrive as they are sent), with
    a client of its own."""
    import asyncio

    import uvicorn

    app = app_factory(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="critical", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def messages_of(engine: Any) -> list[Any]:
    from sqlalchemy import select

    from backline.chat.models import ChatMessage
    from backline.db import create_sessionmaker

    async with create_sessionmaker(engine)() as session:
        query = select(ChatMessage).order_by(ChatMessage.created_at, ChatMessage.id)
        return list((await session.scalars(query)).all())
