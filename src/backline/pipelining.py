"""Redis commands of concurrent requests share one round trip, on one connection of their own.

Every request asks Redis something small: the rate limiter runs a Lua script (the `limits`
library's), authentication asks whether the session was revoked. Sent one by one through
redis-py, each pays for a pooled connection, a write, a wait and a reply parsed in Python,
which costs more CPU than a trivial request itself. A `Pipeliner` queues the commands issued in
one turn of the event loop and writes them together on the next, on a connection it keeps open;
replies are parsed by hiredis (C) as they arrive and handed to their callers in order. A burst
of requests costs one write and one read. Redis still runs each command on its own, atomically
and in order, so nothing counted changes.

redis-py has no automatic pipelining, hence this small layer (the protocol itself, packing and
parsing, is hiredis's):

    pipeliner = Pipeliner(client)                  # the address and credentials of `client`
    await pipeliner.execute("EXISTS", key)         # the reply as the server sends it
    script = pipeliner.script(client.register_script(source))
    await script(keys, args)                       # stands in for redis-py's script object

Failures, each seen only by the callers it concerns:

* a command that cannot be packed (text that is not UTF-8, an unsendable argument) fails its
  own caller at once;
* an error reply fails its own caller with redis-py's `ResponseError`;
* a script the server has forgotten (a restart, SCRIPT FLUSH) is loaded and its calls sent
  again, once, on the same connection;
* a connection that fails, or a server that stays silent past the client's `socket_timeout`,
  fails every caller still waiting with redis-py's `ConnectionError` or `TimeoutError`; the
  next command opens a new connection.

There is no retry: a command that timed out may have run, and counting a hit twice is worse
than reporting the failure. Replies come raw: no redis-py response callbacks are applied.
A pipeliner belongs to the event loop that uses it (an application's lifespan): `aclose()` it
there. `aclose()` sends what was issued before it, waits for the replies, then refuses more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeGuard, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

DEFAULT_TIMEOUT = 5.0


@dataclass(slots=True)
class _Call:
    packed: bytes
    future: asyncio.Future[Any]
    script: AsyncScript | None = None  # for EVALSHA: what to load should the server forget it
    resent: bool = False
    sent_at: float = 0.0


def _reply_error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class Pipeliner:
    @staticmethod
    def supports(client: object) -> TypeGuard[Redis]:
        """Whether `client` is one server over plain TCP (`redis://`), which this speaks."""
        return type(client) is Redis and client.connection_pool.connection_class is Connection

    def __init__(self, client: Redis) -> None:
        if not self.supports(client):
            raise TypeError("pipelining needs one Redis server over plain TCP (redis://)")
        pool = client.connection_pool
        options = pool.connection_kwargs
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._timeout = float(options.get("socket_timeout") or DEFAULT_TIMEOUT)
        self._connect_timeout = float(options.get("socket_connect_timeout") or self._timeout)
        self._handshake = _handshake(options)
        self._server = _server(options)
        self._queued: list[_Call] = []
        self._flush_scheduled: asyncio.AbstractEventLoop | None = None
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._awaiting_connection: list[_Call] = []
        self._closed = False
        self.batches = 0  # writes made so far, each the commands of one turn of the loop

    def serves(self, client: object) -> bool:
        """Whether this pipeliner speaks to the server, as the user and in the database,
        that `client` would: its commands may then share this pipeliner's writes. (Its own
        timeouts and client name apply to them.)"""
        return self.supports(client) and _server(client.connection_pool.connection_kwargs) == (
            self._server
        )

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        return self._queue(command, None)

    def script(self, script: AsyncScript) -> PipelinedScript:
        return PipelinedScript(self, script)

    def _queue(self, command: tuple[Any, ...], script: AsyncScript | None) -> asyncio.Future[Any]:
        if self._closed:
            raise RedisConnectionError("The Redis pipeliner is closed")
        # Packed here, so a command that cannot be sent fails its own caller and no one else's.
        packed = _pack(*command)
        loop = asyncio.get_running_loop()
        if self._flush_scheduled is not loop:  # none yet, or one on a loop that has stopped
            _fail(self._queued, _closed_error)
            self._queued = []
            loop.call_soon(self._flush)
            self._flush_scheduled = loop
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append(_Call(packed, future, script))
        return future

    def _flush(self) -> None:
        queued, self._queued, self._flush_scheduled = self._queued, [], None
        self.batches += 1
        if self._closed:
            _fail(queued, _closed_error)
            return
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is not None:
            if connection.usable(loop):
                connection.send(queued)
                return
            connection.abort()  # lost, or left by a loop that has stopped
            self._connection = None
        connecting = self._connecting
        if connecting is not None and not connecting.done() and connecting.get_loop() is not loop:
            # Started on a loop that stopped mid-way: it will never finish, nor its callers.
            self._connecting = None
            self._awaiting_connection = [
                call for call in self._awaiting_connection if call.future.get_loop() is loop
            ]
        self._awaiting_connection.extend(queued)
        if self._connecting is None or self._connecting.done():
            self._connecting = loop.create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        where = f"{self._host}:{self._port}"
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._timeout), self._host, self._port
                )
                if self._handshake:
                    calls = [_Call(packed, loop.create_future()) for packed in self._handshake]
                    connection.send(calls)
                    await asyncio.gather(*(call.future for call in calls))
        except BaseException as exc:
            if connection is not None:
                connection.abort()
            if isinstance(exc, TimeoutError):
                self._fail_waiting(lambda: RedisTimeoutError(f"Timeout connecting to {where}"))
            elif isinstance(exc, Exception):  # refused, unreachable, a bad name, AUTH refused
                message = f"Error connecting to {where}: {type(exc).__name__}: {exc}"
                self._fail_waiting(lambda: RedisConnectionError(message))
            else:  # cancelled (shutdown): the callers must not wait forever either
                self._fail_waiting(lambda: RedisConnectionError(f"Connecting to {where} stopped"))
                raise
            return
        self._connection = connection  # closing waits for this task, then closes it
        waiting, self._awaiting_connection = self._awaiting_connection, []
        connection.send([call for call in waiting if not call.future.done()])

    def _fail_waiting(self, make: Callable[[], Exception]) -> None:
        waiting, self._awaiting_connection = self._awaiting_connection, []
        _fail(waiting, make)

    async def aclose(self) -> None:
        """Refuse new commands, let those in flight be answered, then close the connection."""
        if self._queued and self._flush_scheduled is asyncio.get_running_loop():
            self._flush()  # issued before the close: sent now, answered below
        self._closed = True
        connecting = self._connecting
        loop = asyncio.get_running_loop()
        if connecting is not None and not connecting.done() and connecting.get_loop() is loop:
            await asyncio.gather(connecting, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


def _closed_error() -> Exception:
    return RedisConnectionError("The Redis pipeliner is closed")


def _fail(calls: list[_Call], make: Callable[[], Exception]) -> None:
    """Fail every caller still waiting, each with an error of its own (a shared one would
    chain their tracebacks together); callers of a loop that has stopped are gone already."""
    for call in calls:
        future = call.future
        if not future.done() and not future.get_loop().is_closed():
            future.set_exception(make())


class _Connection(asyncio.Protocol):
    """One connection: writes batches, hands each reply to the next caller in line."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.reader = hiredis.Reader(replyError=_reply_error)
        self.waiting: deque[_Call] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._lost = loop.create_future()

    def usable(self, loop: asyncio.AbstractEventLoop) -> bool:
        transport = self.transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and self.loop is loop
            and not loop.is_closed()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, calls: list[_Call]) -> None:
        if not calls:
            return
        if self.closed or self.transport is None:
            _fail(calls, lambda: RedisConnectionError("Redis connection closed"))
            return
        now = self.loop.time()
        for call in calls:
            call.sent_at = now
        self.waiting.extend(calls)
        self.transport.write(b"".join(call.packed for call in calls))
        if self._watchdog is None:
            self._watchdog = self.loop.call_at(now + self.timeout, self._watch)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        forgotten: list[_Call] = []
        while self.waiting:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.waiting.extendleft(reversed(forgotten))  # they fail with the rest
                self._close(partial(RedisConnectionError, f"Protocol error from Redis: {exc}"))
                return
            if reply is False:
                break
            call = self.waiting.popleft()
            if isinstance(reply, NoScriptError) and call.script is not None and not call.resent:
                forgotten.append(call)
            elif call.future.done():  # its caller went away meanwhile
                continue
            elif isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)
        if forgotten:
            self._reload(forgotten)

    def _reload(self, forgotten: list[_Call]) -> None:
        """Load the scripts the server lost, then send their calls again, in the same order."""
        sources = dict.fromkeys(call.script.script for call in forgotten if call.script)
        loads = [
            _Call(_pack("SCRIPT", "LOAD", source), self.loop.create_future()) for source in sources
        ]
        for load in loads:  # a failed load shows in the calls sent again
            load.future.add_done_callback(_consume)
        for call in forgotten:
            call.resent = True
        self.send([*loads, *forgotten])

    def _watch(self) -> None:
        self._watchdog = None
        if not self.waiting or self.closed:
            return
        due = self.waiting[0].sent_at + self.timeout
        if self.loop.time() >= due:
            self._close(lambda: RedisTimeoutError("Timeout reading from Redis"))
        else:
            self._watchdog = self.loop.call_at(due, self._watch)

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(lambda: RedisConnectionError("Connection closed by Redis"))
        if not self._lost.done():
            self._lost.set_result(None)

    def abort(self) -> None:
        self._close(lambda: RedisConnectionError("Redis connection closed"))

    def _close(self, make: Callable[[], Exception]) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiting, self.waiting = self.waiting, deque()
        _fail(list(waiting), make)
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(RuntimeError):  # its loop has stopped: nothing to do
                self.transport.abort()

    async def close(self) -> None:
        """Close once the replies in flight are in (at once if its loop is another's)."""
        if self.loop is not asyncio.get_running_loop():
            self.abort()
            return
        if self.waiting and not self.closed:
            await asyncio.gather(*(call.future for call in self.waiting), return_exceptions=True)
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            await self._lost


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _server(options: dict[str, Any]) -> tuple[object, ...]:
    """Where a client's commands go, as whom, in which database."""
    return (
        options.get("host", "localhost"),
        int(options.get("port", 6379)),
        options.get("username"),
        options.get("password"),
        int(options.get("db") or 0),
    )


def _handshake(options: dict[str, Any]) -> list[bytes]:
    """The commands a new connection sends first, as redis-py's own connections do."""
    commands: list[tuple[Any, ...]] = []
    password, username = options.get("password"), options.get("username")
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if options.get("client_name"):
        commands.append(("CLIENT", "SETNAME", options["client_name"]))
    if int(options.get("db") or 0):
        commands.append(("SELECT", int(options["db"])))
    return [_pack(*command) for command in commands]


def _pack(*command: Any) -> bytes:
    packed: bytes = hiredis.pack_command(command)
    return packed


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
