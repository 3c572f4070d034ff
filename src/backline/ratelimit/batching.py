"""Concurrent rate-limit checks share one round trip to Redis.

Every request's check is a Lua script call (the `limits` library's). Sent one by one, each pays
for a pooled connection, a write, a wait and a read, which costs more CPU than a trivial
request itself. `ScriptBatcher` queues the calls made in one turn of the event loop and sends
them as one pipeline on the next: many requests' checks in a burst cost one write and one read.
Each script still runs atomically and in order on the server, so the limits stay exact.

redis-py has no automatic pipelining, hence this small layer. It replaces the script objects
the `limits` Redis bridge calls, keeping their signature, so the library still owns the keys,
the scripts and the counting. Errors reach each caller as they would unbatched (the storage
wraps them); scripts the server has forgotten (a restart, SCRIPT FLUSH) are loaded and their
calls sent again, once, on the same connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

import hiredis
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

MAX_BATCH = 256  # commands per pipeline; a larger burst goes in several
Call = tuple[AsyncScript, Sequence[Any], "asyncio.Future[Any]"]


def batch_scripts(storage: RedisStorage) -> ScriptBatcher | None:
    """Route the sliding-window scripts of a redis-py backed storage through a batcher."""
    bridge = storage.bridge
    if not isinstance(bridge, RedispyBridge):
        return None  # another client library: its scripts are left as they are
    client: object = bridge.get_connection()
    if type(client) is not Redis:
        return None  # a cluster or a sentinel: likewise
    batcher = ScriptBatcher(client)
    for name in ("lua_acquire_sliding_window", "lua_sliding_window"):
        setattr(bridge, name, batcher.bind(getattr(bridge, name)))
    return batcher


class ScriptBatcher:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._queued: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def bind(self, script: AsyncScript) -> BatchedScript:
        return BatchedScript(self, script)

    def call(self, script: AsyncScript, args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((script, args, future))
        return future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(
                self._send(queued[start : start + MAX_BATCH])
            )
            self._sending.add(task)  # a reference until it is done
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Call]) -> None:
        pool = self.client.connection_pool
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                results = await _exchange(connection, batch)
                forgotten = [
                    i for i, result in enumerate(results) if isinstance(result, NoScriptError)
                ]
                if forgotten:  # the server lost its scripts (a restart): load each, send again
                    for source in {batch[i][0].script for i in forgotten}:
                        await connection.send_command("SCRIPT", "LOAD", source, check_health=False)
                        await connection.read_response()
                    again = await _exchange(connection, [batch[i] for i in forgotten])
                    for i, result in zip(forgotten, again, strict=True):
                        results[i] = result
            except BaseException:  # replies may be left unread: the connection is out of step
                await connection.disconnect(nowait=True)
                raise
            finally:
                await pool.release(connection)
        except Exception as exc:  # the connection failed: every caller sees it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the callers
            for *_, future in batch:
                future.cancel()
            raise
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # its request went away meanwhile
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def aclose(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def _exchange(connection: AbstractConnection, batch: list[Call]) -> list[Any]:
    """Write every call at once, then read one reply per call, in order.

    Packed by hiredis (C) rather than redis-py's asyncio packer, which is pure Python and was
    the largest cost of a check.
    """
    packed = b"".join(
        hiredis.pack_command(("EVALSHA", script.sha, *args)) for script, args, _ in batch
    )
    await connection.send_packed_command(packed, check_health=False)
    results: list[Any] = []
    for _ in batch:
        try:
            results.append(await connection.read_response())
        except ResponseError as error:  # that script failed; the replies after it still follow
            results.append(error)
    return results


class BatchedScript:
    """Stands in for a redis-py script object: `await script(keys, args)`."""

    def __init__(self, batcher: ScriptBatcher, script: AsyncScript) -> None:
        self.batcher = batcher
        self.script = script
        self.sha = script.sha

    def __call__(
        self, keys: Sequence[Any] | None = None, args: Sequence[Any] | None = None
    ) -> Awaitable[Any]:
        keys = keys or []
        return self.batcher.call(self.script, (len(keys), *keys, *(args or [])))
