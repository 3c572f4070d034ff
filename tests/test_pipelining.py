"""Concurrent commands and script calls share one round trip, on a Redis server of our own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError, ResponseError

from backline.pipelining import MAX_BATCH, PipelinedScript, Pipeliner
from tests.conftest import OwnRedis

ECHO = "return {KEYS[1], ARGV[1]}"
FAILS_ON_BOOM = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]"


@pytest.fixture
async def client(own_redis: OwnRedis) -> AsyncIterator[redis.asyncio.Redis]:
    name = f"batching-{uuid.uuid4().hex[:8]}"
    client = redis.asyncio.Redis.from_url(own_redis.url, client_name=name)
    yield client
    await client.aclose()


async def connections_named(client: redis.asyncio.Redis) -> int:
    name = client.connection_pool.connection_kwargs["client_name"]
    observer = redis.asyncio.Redis(port=client.connection_pool.connection_kwargs["port"])
    try:
        return sum(1 for entry in await observer.client_list() if entry["name"] == name)
    finally:
        await observer.aclose()


def bound(client: redis.asyncio.Redis, source: str) -> tuple[Pipeliner, PipelinedScript]:
    pipeliner = Pipeliner(client)
    return pipeliner, pipeliner.script(client.register_script(source))


async def test_concurrent_calls_share_one_connection_and_each_gets_its_own_reply(
    client: redis.asyncio.Redis,
) -> None:
    pipeliner, echo = bound(client, ECHO)
    await client.script_load(ECHO)
    replies = await asyncio.gather(*(echo([f"k{i}"], [i]) for i in range(200)))
    assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(200)]
    # Sent one by one, redis-py would have opened a connection per concurrent call.
    assert await connections_named(client) == 1
    await pipeliner.aclose()


async def test_plain_commands_travel_with_script_calls(client: redis.asyncio.Redis) -> None:
    pipeliner, echo = bound(client, ECHO)
    await client.set("present", "1")
    replies = await asyncio.gather(
        pipeliner.execute("EXISTS", "present"),
        echo(["k"], ["1"]),
        pipeliner.execute("EXISTS", "absent"),
        pipeliner.execute("GET", "present"),
    )
    assert replies == [1, [b"k", b"1"], 0, b"1"]
    assert await connections_named(client) == 1
    await pipeliner.aclose()


async def test_a_burst_larger_than_a_batch_is_answered_whole(client: redis.asyncio.Redis) -> None:
    pipeliner, echo = bound(client, ECHO)
    count = MAX_BATCH * 2 + 7
    replies = await asyncio.gather(*(echo(["k"], [i]) for i in range(count)))
    assert [int(reply[1]) for reply in replies] == list(range(count))
    await pipeliner.aclose()


async def test_a_failing_call_does_not_disturb_the_replies_around_it(
    client: redis.asyncio.Redis,
) -> None:
    pipeliner, script = bound(client, FAILS_ON_BOOM)
    await client.script_load(FAILS_ON_BOOM)
    values = ["a", "boom", "b", "boom", "c"]
    replies = await asyncio.gather(*(script([], [v]) for v in values), return_exceptions=True)
    assert [r if isinstance(r, bytes) else type(r) for r in replies] == [
        b"a",
        ResponseError,
        b"b",
        ResponseError,
        b"c",
    ]
    assert await script([], ["after"]) == b"after"  # the connection is still in step
    await pipeliner.aclose()


async def test_a_command_that_cannot_be_sent_fails_only_its_caller(
    client: redis.asyncio.Redis,
) -> None:
    pipeliner, echo = bound(client, ECHO)
    before = [echo(["k"], [i]) for i in range(3)]
    with pytest.raises(UnicodeEncodeError):
        pipeliner.execute("GET", "\ud800")  # a lone surrogate: not UTF-8
    with pytest.raises(TypeError):
        pipeliner.execute("GET", object())
    after = [echo(["k"], [i]) for i in range(3, 6)]
    replies = await asyncio.gather(*before, *after)
    assert [int(reply[1]) for reply in replies] == list(range(6))
    await pipeliner.aclose()


async def test_a_script_the_server_forgot_is_loaded_again(client: redis.asyncio.Redis) -> None:
    pipeliner, echo = bound(client, ECHO)
    assert await echo(["k"], ["1"]) == [b"k", b"1"]
    await client.set("present", "1")
    await client.script_flush()  # as after a restart of a server that keeps nothing
    replies = await asyncio.gather(
        *(echo(["k"], [i]) for i in range(5)), pipeliner.execute("EXISTS", "present")
    )
    assert [int(reply[1]) for reply in replies[:5]] == list(range(5))
    assert replies[5] == 1
    assert (await client.script_exists(echo.sha)) == [True]
    await pipeliner.aclose()


async def test_a_caller_that_goes_away_leaves_the_others_answered(
    client: redis.asyncio.Redis,
) -> None:
    pipeliner, echo = bound(client, ECHO)
    await client.script_load(ECHO)
    calls = [asyncio.ensure_future(echo(["k"], [i])) for i in range(10)]
    calls[3].cancel()
    replies = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(replies[3], asyncio.CancelledError)
    assert [int(r[1]) for i, r in enumerate(replies) if i != 3] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert await echo(["k"], ["next"]) == [b"k", b"next"]
    await pipeliner.aclose()


async def test_a_server_that_is_gone_fails_every_call_of_the_batch(
    client: redis.asyncio.Redis, own_redis: OwnRedis
) -> None:
    pipeliner, echo = bound(client, ECHO)
    await echo(["k"], ["warm"])
    own_redis.stop()
    replies = await asyncio.gather(*(echo(["k"], [i]) for i in range(4)), return_exceptions=True)
    assert all(isinstance(reply, ConnectionError) for reply in replies)
    own_redis.start()
    assert await echo(["k"], ["back"]) == [b"k", b"back"]  # reconnects on its own
    await pipeliner.aclose()
