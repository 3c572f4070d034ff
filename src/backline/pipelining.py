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

Commands are packed by hiredis (C), as each is queued: redis-py's asyncio packer is pure Python
and was the largest cost of a check. A command that cannot be packed, or that Redis refuses,
fails in its own caller only; a failed connection fails every caller still waiting on it (and
is dropped, not reused); scripts the server has forgotten (a restart, SCRIPT FLUSH) are loaded
and their calls sent again, once, on the same connection, after the rest are answered.
Replies come raw: no redis-py response callbacks are applied. There is no retry: a command
that timed out may have run, and counting a hit twice is worse than reporting the failure.
"""

from __future__ import annotations

import asyncio
import contextvars
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
    packed: bytes
    future: asyncio.Future[Any]
    script: AsyncScript | None = None  # for EVALSHA: what to load should the server forget it


class Pipeliner:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._queued: list[_Call] = []
        self._flush_scheduled: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        return self._queue(command, None)

    def script(self, script: AsyncScript) -> PipelinedScript:
        return PipelinedScript(self, script)

    def _queue(self, command: tuple[Any, ...], script: AsyncScript | None) -> asyncio.Future[Any]:
        # Packed here, so a command that cannot be sent (text that is not UTF-8, an argument
        # of an unsendable type) fails its own caller at once and no one else's.
        packed = hiredis.pack_command(command)
        loop = asyncio.get_running_loop()
        if self._flush_scheduled is not loop:  # none yet, or one on a loop that has stopped
            for stale in self._queued:
                stale.future.cancel()
            self._queued = []
            loop.call_soon(self._flush)
            self._flush_scheduled = loop
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append(_Call(packed, future, script))
        return future

    def _flush(self) -> None:
        queued, self._queued, self._flush_scheduled = self._queued, [], None
        for start in range(0, len(queued), MAX_BATCH):
            # A context of its own: not the first caller's request ID and user.
            task = asyncio.get_running_loop().create_task(
                self._send(queued[start : start + MAX_BATCH]), context=contextvars.Context()
            )
            self._sending.add(task)  # a reference until it is done
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        pool = self.client.connection_pool
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                replies = await _exchange(connection, batch, check_health=True)
                forgotten = [
                    call
                    for call, reply in zip(batch, replies, strict=True)
                    if isinstance(reply, NoScriptError) and call.script is not None
                ]
                again = {id(call) for call in forgotten}
                _answer([call for call in batch if id(call) not in again], replies, batch)
                if forgotten:  # the server lost its scripts (a restart): load, send again
                    batch = forgotten  # a failure from here on is theirs alone
                    _answer(batch, await _reload_and_resend(connection, batch), batch)
            except BaseException:  # replies may be left unread: the connection is out of step
                await connection.disconnect(nowait=True)
                raise
            finally:
                await pool.release(connection)
        except Exception as exc:  # the connection failed: every caller still waiting sees it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
        except BaseException:  # cancelled (shutdown): so are the callers
            for call in batch:
                call.future.cancel()
            raise

    async def aclose(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _answer(calls: list[_Call], replies: list[Any], sent: list[_Call]) -> None:
    """Resolve `calls` with their replies (`replies[i]` answers `sent[i]`)."""
    reply_of = {id(call): reply for call, reply in zip(sent, replies, strict=True)}
    for call in calls:
        if call.future.done():  # its request went away meanwhile
            continue
        reply = reply_of[id(call)]
        if isinstance(reply, Exception):
            call.future.set_exception(reply)
        else:
            call.future.set_result(reply)


async def _exchange(
    connection: AbstractConnection, batch: list[_Call], *, check_health: bool = False
) -> list[Any]:
    """Write every command at once, then read one reply per command, in order."""
    await connection.send_packed_command(
        b"".join(call.packed for call in batch), check_health=check_health
    )
    replies: list[Any] = []
    for _ in batch:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:  # that command failed; the replies after it still follow
            replies.append(error)
    return replies


async def _reload_and_resend(connection: AbstractConnection, batch: list[_Call]) -> list[Any]:
    for source in {script.script for call in batch if (script := call.script) is not None}:
        await connection.send_command("SCRIPT", "LOAD", source, check_health=False)
        await connection.read_response()
    return await _exchange(connection, batch)


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
