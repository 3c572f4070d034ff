"""`bench.load.alternate`: a drained turn's rate is taken over the time to its last answer."""

from __future__ import annotations

import asyncio

import pytest
from bench.load import Request, alternate, server
from starlette.types import Receive, Scope, Send

pytestmark = pytest.mark.slow

ANSWER_SECONDS = 0.4


def create_slow_app() -> object:
    """Every answer takes ANSWER_SECONDS: far longer than a turn of the test below."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/healthz":
            await asyncio.sleep(ANSWER_SECONDS)
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_route_slower_than_its_turn_reads_at_its_own_rate() -> None:
    connections = 4
    with server({}, factory="tests.test_bench_load:create_slow_app") as port:
        rows = alternate(
            port, [Request("/slow")], rounds=2, seconds=0.1, connections=connections, drain=True
        )
    # Each connection gets one answer a turn, in ANSWER_SECONDS: 10 a second in all. Counted
    # over the turn's nominal 0.1 s it would read 40, whatever the route's speed.
    expected = connections / ANSWER_SECONDS
    for (rate,) in rows:
        assert expected / 2 < rate <= expected * 1.05
