"""Redis commands of concurrent requests share one round trip.

Every request asks Redis something small: the rate limiter runs a Lua script (the `limits`
library's), authentication asks whether the session was revoked. Sent one by one, each pays
for a pooled connection, a write, a wait and a read, which costs more CPU than a trivial
request itself. A `Pipeliner` queues the commands issued in one turn of the event loop and
sends them together on the next: a burst of requests costs one write and one read. Redis still
runs each command on its own, atomically and in order, so nothing counted changes.

redis-py has no automatic pipelining, hence this small layer over its connection pool:

    pipeliner = Pipeliner(client)
    await pipeliner.execute("EXISTS", key)         # the reply as the server sends it
    script = pipeliner.script(client.register_script(source))
    await script(keys, args)                       # stands in for redis-py's script object

Commands are packed by hiredis (C): redis-py's asyncio packer is pure Python and was the
largest cost of a check. A failed command raises its `ResponseError` in its own caller only;
a failed connection raises in every caller of the batch (and is dropped, not reused); scripts
the server has forgotten (a restart, SCRIPT FLUSH) are loaded and their calls sent again, once,
on the same connection. Replies come raw: no redis-py response callbacks are applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

MAX_BATCH = 256  # commands per round trip; a larger burst goes in several


@dataclass(frozen=True, slots=True)
class _Call:
    command: tuple[Any, ...]
    future: asyncio.Future[Any]
    script: AsyncScript | None = None  # for EVALSHA: what to load should the server forget it


class Pipeliner:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        return self._queue(command, None)

    def script(self, script: AsyncScript) -> PipelinedScript:
        return PipelinedScript(self, script)

    def _queue(self, command: tuple[Any, ...], script: AsyncScript | None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append(_Call(command, future, script))
        return future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(
                self._send(queued[start : start + MAX_BATCH])
            )
            self._sending.add(task)  # a reference until it is done
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        pool = self.client.connection_pool
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                replies = await _exchange(connection, batch)
                await _reload_forgotten(connection, batch, replies)
            except BaseException:  # replies may be left unread: the connection is out of step
                await connection.disconnect(nowait=True)
                raise
            finally:
                await pool.release(connection)
        except Exception as exc:  # the connection failed: every caller sees it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the callers
            for call in batch:
                call.future.cancel()
            raise
        for call, reply in zip(batch, replies, strict=True):
            if call.future.done():  # its request went away meanwhile
                continue
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def aclose(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def _exchange(connection: AbstractConnection, batch: list[_Call]) -> list[Any]:
    """Write every command at once, then read one reply per command, in order."""
    packed = b"".join(hiredis.pack_command(call.command) for call in batch)
    await connection.send_packed_command(packed, check_health=False)
    replies: list[Any] = []
    for _ in batch:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:  # that command failed; the replies after it still follow
            replies.append(error)
    return replies


async def _reload_forgotten(
    connection: AbstractConnection, batch: list[_Call], replies: list[Any]
) -> None:
    forgotten = [
        i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError) and batch[i].script
    ]
    if not forgotten:
        return
    for source in {script.script for i in forgotten if (script := batch[i].script) is not None}:
        await connection.send_command("SCRIPT", "LOAD", source, check_health=False)
        await connection.read_response()
    again = await _exchange(connection, [batch[i] for i in forgotten])
    for i, reply in zip(forgotten, again, strict=True):
        replies[i] = reply


class PipelinedScript:
    """Stands in for a redis-py script object: `await script(keys, args)`."""

    def __init__(self, pipeliner: Pipeliner, script: AsyncScript) -> None:
        self.pipeliner = pipeliner
        self.script = script
        self.sha = script.sha

    def __call__(
        self, keys: Sequence[Any] | None = None, args: Sequence[Any] | None = None
    ) -> Awaitable[Any]:
        keys = keys or []
        command = ("EVALSHA", self.sha, len(keys), *keys, *(args or []))
        return self.pipeliner._queue(command, self.script)
