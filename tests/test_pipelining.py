"""Concurrent commands and script calls share one round trip, on a Redis server of our own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backline.pipelining import PipelinedScript, Pipeliner
from tests.conftest import OwnRedis

ECHO = "return {KEYS[1], ARGV[1]}"
FAILS_ON_BOOM = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]"


@pytest.fixture
async def client(own_redis: OwnRedis) -> AsyncIterator[redis.asyncio.Redis]:
    name = f"batching-{uuid.uuid4().hex[:8]}"
    client = redis.asyncio.Redis.from_url(own_redis.url, client_name=name)
    yield client
    await client.aclose()


async def pipelined_connections(client: redis.asyncio.Redis) -> int:
    """The connections the pipeliner opened (named after the client, suffixed `-pipelined`)."""
    name = f"{client.connection_pool.connection_kwargs['client_name']}-pipelined"
    entries = await client.client_list()
    return sum(1 for entry in entries if entry["name"] == name)


async def pipelined_connections_after_close(client: redis.asyncio.Redis) -> int:
    """As above, once the server has seen a closed connection go (it takes a moment)."""
    for _ in range(50):
        if (count := await pipelined_connections(client)) == 0:
            return count
        await asyncio.sleep(0.01)
    return await pipelined_connections(client)


def bound(client: redis.asyncio.Redis, source: str) -> tuple[Pipeliner, PipelinedScript]:
    options = client.connection_pool.connection_kwargs
    own = redis.asyncio.Redis(
        port=options["port"], client_name=f"{options['client_name']}-pipelined"
    )
    pipeliner = Pipeliner(own)
    return pipeliner, pipeliner.script(client.register_script(source))


async def test_concurrent_calls_share_one_connection_and_each_gets_its_own_reply(
    client: redis.asyncio.Redis,
) -> None:
    pipeliner, echo = bound(client, ECHO)
    await client.script_load(ECHO)
    replies = await asyncio.gather(*(echo([f"k{i}"], [i]) for i in range(200)))
    assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(200)]
    # Sent one by one, redis-py would have opened a connection per concurrent call.
    assert await pipelined_connections(client) == 1
    await pipeliner.aclose()
    assert await pipelined_connections_after_close(client) == 0


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
    assert await pipelined_connections(client) == 1
    await pipeliner.aclose()


async def test_a_burst_larger_than_a_batch_is_answered_whole(client: redis.asyncio.Redis) -> None:
    pipeliner, echo = bound(client, ECHO)
    count = 1000
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


async def test_a_new_connection_logs_in_and_selects_the_database(own_redis: OwnRedis) -> None:
    admin = redis.asyncio.Redis(port=own_redis.port)
    await admin.config_set("requirepass", "s3cret-pass")
    await admin.aclose()
    url = f"redis://:s3cret-pass@127.0.0.1:{own_redis.port}/3"
    client = redis.asyncio.Redis.from_url(url, client_name="logged-in")
    await client.set("only-in-3", "yes")
    pipeliner = Pipeliner(client)
    assert await pipeliner.execute("GET", "only-in-3") == b"yes"
    assert await pipeliner.execute("CLIENT", "GETNAME") == b"logged-in"
    await pipeliner.aclose()
    await client.aclose()


async def test_a_wrong_password_fails_the_callers_with_a_connection_error(
    own_redis: OwnRedis,
) -> None:
    admin = redis.asyncio.Redis(port=own_redis.port)
    await admin.config_set("requirepass", "s3cret-pass")
    await admin.aclose()
    client = redis.asyncio.Redis.from_url(f"redis://:wrong@127.0.0.1:{own_redis.port}/0")
    pipeliner = Pipeliner(client)
    with pytest.raises(ConnectionError) as caught:
        await pipeliner.execute("PING")
    assert "wrong" not in str(caught.value)
    await pipeliner.aclose()
    await client.aclose()


async def test_a_silent_server_fails_the_callers_after_the_socket_timeout() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis.asyncio.Redis(port=port, socket_timeout=0.2)
    pipeliner = Pipeliner(client)
    loop = asyncio.get_running_loop()
    began = loop.time()
    replies = await asyncio.gather(
        *(pipeliner.execute("PING") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(reply, RedisTimeoutError) for reply in replies)
    assert 0.2 <= loop.time() - began < 2
    await pipeliner.aclose()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
    await client.aclose()


async def test_a_garbled_reply_after_a_forgotten_script_fails_every_caller() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"-NOSCRIPT No matching script\r\n!!not a reply\r\n")
        await writer.drain()
        await reader.read(1024)  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(garble, "127.0.0.1", 0)
    client = redis.asyncio.Redis(port=server.sockets[0].getsockname()[1], socket_timeout=5)
    pipeliner = Pipeliner(client)
    script = pipeliner.script(client.register_script(ECHO))
    replies = await asyncio.wait_for(
        asyncio.gather(script(["k"], ["1"]), pipeliner.execute("PING"), return_exceptions=True),
        timeout=2,  # neither caller is left waiting for the socket timeout, or forever
    )
    assert all(isinstance(reply, ConnectionError) for reply in replies)
    await pipeliner.aclose()
    server.close()
    await server.wait_closed()
    await client.aclose()


async def test_closing_answers_what_was_issued_before_and_refuses_the_rest(
    client: redis.asyncio.Redis,
) -> None:
    pipeliner, _ = bound(client, ECHO)
    issued = pipeliner.execute("PING")
    await pipeliner.aclose()
    assert await issued == b"PONG"
    with pytest.raises(ConnectionError):
        await pipeliner.execute("PING")
    assert await pipelined_connections_after_close(client) == 0
