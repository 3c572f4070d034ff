"""`backline chat ping`, run as a real process against the stand-in provider."""

from __future__ import annotations

import asyncio
import sys

from tests.chat.conftest import API_KEY
from tests.chat.upstream import Plan, Upstream
from tests.served import serve_env


async def _ping(**settings: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backline",
        "chat",
        "ping",
        env=serve_env(BACKLINE_ENV="test", **settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_ping_says_the_provider_answers(upstream: Upstream) -> None:
    status, out = await _ping(
        BACKLINE_CHAT_BASE_URL=upstream.url,
        BACKLINE_CHAT_MODEL="test-model",
        BACKLINE_CHAT_API_KEY=API_KEY,
    )
    assert status == 0, out
    assert "the chat provider answers (model test-model" in out
    assert upstream.seen[-1].body["messages"] == [{"role": "user", "content": "ping"}]
    assert API_KEY not in out


async def test_ping_says_when_it_does_not(upstream: Upstream) -> None:
    upstream.then(Plan(status=500), Plan(status=500), Plan(status=500))
    status, out = await _ping(
        BACKLINE_CHAT_BASE_URL=upstream.url,
        BACKLINE_CHAT_MODEL="test-model",
        BACKLINE_CHAT_API_KEY=API_KEY,
    )
    assert status == 1
    assert "chat_upstream_error" in out
    assert API_KEY not in out
    assert "upstream-body-secret" not in out


async def test_ping_names_the_missing_setting() -> None:
    status, out = await _ping()
    assert status == 1
    assert "BACKLINE_CHAT_BASE_URL" in out
