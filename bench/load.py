"""A small HTTP/1.1 load generator and a server runner for the benchmarks. Loopback only.

The generator runs in a process of its own (on uvloop, so that it takes as little as it can of
the cores it shares with the server), keeps C connections alive and sends requests for a fixed
time. It speaks only what Backline answers (Content-Length bodies), which keeps it fast
enough not to be the bottleneck of a one-worker server. Every run is bounded by its duration.

Every response's status is read: only a 2xx counts as throughput (and as a latency); anything
else (a 401 for a lapsed token, a 429 from a rate limit, a 503 from a busy server) is an error,
counted by status in the `errors` a caller may pass, and reported on stderr. A refusal is cheap
to make, and counted as throughput it would flatter the route that refuses.

Two routes are compared with `alternate`: the same connections take turns of a quarter of a
second at each, many times over, and the ratio of the two turns of each round is kept. The
speed of a core of this shared machine drifts by a third within seconds; measured a few
seconds apart, two routes would be compared as much by that drift as by their own cost.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import median
from typing import Any

import httpx
import uvloop

from bench.support import free_port

HOST = "127.0.0.1"


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send `request`, read the whole response; its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    lines = head.split(b"\r\n")
    for line in lines:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(lines[0].split(b" ", 2)[1])


def _ok(status: int) -> bool:
    return 200 <= status < 300


async def _connection(
    port: int,
    request: bytes,
    window: tuple[float, float],
    latencies: list[float],
    errors: Counter[int],
    pace: float | None,
) -> int:
    """Send `request` until the window closes; count the 2xx exchanges that end inside it.

    With `pace` (seconds between requests), requests are due at fixed times, and a latency is
    measured from when its request was due: a request that had to wait for the one before it
    on this connection counts its wait (an open load, which shows queueing).
    """
    reader, writer = await asyncio.open_connection(HOST, port)
    opens, closes = window
    done = 0
    due = time.monotonic()
    try:
        while time.monotonic() < closes:
            if pace is not None:
                due += pace
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            began = time.monotonic() if pace is None else due
            status = await _exchange(reader, writer, request)
            ended = time.monotonic()
            if opens <= ended <= closes:
                if _ok(status):
                    latencies.append(ended - began)
                    done += 1
                else:
                    errors[status] += 1
    finally:
        writer.close()
    return done


def _run(
    port: int,
    request: bytes,
    window: tuple[float | None, float],
    connections: int,
    pace: float | None,
    out: object,
) -> None:
    opens, seconds = window
    opens = time.monotonic() if opens is None else opens  # by default, from this process's start

    async def main() -> tuple[int, list[float], Counter[int]]:
        latencies: list[float] = []
        errors: Counter[int] = Counter()
        counts = await asyncio.gather(
            *(
                _connection(port, request, (opens, opens + seconds), latencies, errors, pace)
                for _ in range(connections)
            )
        )
        return sum(counts), latencies, errors

    total, latencies, errors = uvloop.run(main())
    out.send((total / seconds, sorted(latencies), dict(errors)))  # type: ignore[attr-defined]


def _report_errors(what: str, errors: Mapping[int, int]) -> None:
    if errors:
        counts = ", ".join(f"{count} x {status}" for status, count in sorted(errors.items()))
        print(f"bench: {what}: non-2xx, not counted as throughput: {counts}", file=sys.stderr)


def _request(method: str, path: str, headers: Mapping[str, str] | None, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def start(
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    seconds: float = 5.0,
    connections: int = 16,
    headers: Mapping[str, str] | None = None,
    opens: float | None = None,
    rate: float | None = None,
    errors: Counter[int] | None = None,
) -> Callable[[], tuple[float, list[float]]]:
    """Start a load in another process; the returned function waits for (req/s, latencies).

    Only 2xx exchanges that end in the window of `seconds` from `opens` (a `time.monotonic()`
    reading, a clock all processes of this machine share; by default, when the load process
    starts) are counted; other answers are added to `errors` by status. Sending starts at once,
    so a later `opens` counts the server in its stride: from a cold start, nothing ends until
    the first requests have been served. With `rate`, the connections together send that many
    requests a second at most, each due at a fixed time (see `_connection`).
    """
    parent, child = multiprocessing.Pipe()
    request = _request(method, path, headers, body)
    window = (opens, seconds)
    pace = None if rate is None else connections / rate
    worker = multiprocessing.Process(
        target=_run, args=(port, request, window, connections, pace, child)
    )
    worker.start()

    def result() -> tuple[float, list[float]]:
        achieved, latencies, refused = parent.recv()
        worker.join(timeout=30)
        _report_errors(f"{method} {path}", refused)
        if errors is not None:
            errors.update(refused)
        return achieved, latencies

    return result


def measure(port: int, path: str, **kwargs: Any) -> tuple[float, list[float]]:
    """Requests per second and the sorted latencies of `path`, from another process."""
    return start(port, path, **kwargs)()


@dataclass(frozen=True)
class Request:
    path: str
    method: str = "GET"
    headers: Mapping[str, str] | None = None
    body: bytes = b""
    port: int | None = None  # another server than the one `alternate` is given

    def encode(self) -> bytes:
        return _request(self.method, self.path, self.headers, self.body)


async def _turns(
    turns: list[tuple[int, int, bytes, float]],
    counts: list[int],
    errors: Counter[tuple[int, int]],
    width: int,
    barrier: asyncio.Barrier | None,
    spans: list[list[float]],
) -> None:
    """One connection to each server; each turn sends its request on its server's.

    With a `barrier`, a turn starts when every connection has had its answers to the turn
    before, and lasts its own length from there; `spans[index]` is then widened to cover the
    turn from its start to this connection's last answer."""
    streams = {}
    try:
        for port in dict.fromkeys(port for _, port, _, _ in turns):
            streams[port] = await asyncio.open_connection(HOST, port)
        for index, port, request, stop_at in turns:
            if barrier is not None:
                await barrier.wait()
                began = time.perf_counter()
                stop_at += began  # `stop_at` is the turn's length here
                spans[index][0] = min(spans[index][0], began)
            while time.perf_counter() < stop_at:
                reader, writer = streams[port]
                try:
                    status = await _exchange(reader, writer, request)
                except (asyncio.IncompleteReadError, ConnectionError):
                    # The server closed a connection idle past its keep-alive timeout (the
                    # other servers' turns): a new one, and the request is sent again.
                    writer.close()
                    streams[port] = await asyncio.open_connection(HOST, port)
                    continue
                if _ok(status):
                    counts[index] += 1
                else:
                    errors[index % width, status] += 1
            spans[index][1] = max(spans[index][1], time.perf_counter())
    finally:
        for _, writer in streams.values():
            writer.close()


def _alternate(
    requests: list[tuple[int, bytes]],
    rounds: int,
    turn: tuple[float, bool],
    connections: int,
    out: Any,
) -> None:
    seconds, drain = turn

    async def main() -> tuple[list[int], list[float], dict[tuple[int, int], int]]:
        stop_at = 0.0 if drain else time.perf_counter() + 0.05
        turns = []
        for index in range(rounds * len(requests)):
            port, request = requests[index % len(requests)]
            stop_at = seconds if drain else stop_at + seconds
            turns.append((index, port, request, stop_at))
        counts = [0] * len(turns)
        spans = [[float("inf"), 0.0] for _ in turns]
        errors: Counter[tuple[int, int]] = Counter()
        width = len(requests)
        barrier = asyncio.Barrier(connections) if drain else None
        await asyncio.gather(
            *(_turns(turns, counts, errors, width, barrier, spans) for _ in range(connections))
        )
        # Drained, a turn lasts until its last answer: a slow route's requests, started in
        # the turn, end well after it, and counted over the turn's nominal length alone they
        # would read as at least `connections` / `seconds` a second however slow it is.
        lengths = [end - start if drain else seconds for start, end in spans]
        return counts, lengths, dict(errors)

    out.send(uvloop.run(main()))


def alternate(
    port: int,
    requests: Sequence[Request],
    *,
    rounds: int,
    seconds: float = 0.25,
    connections: int = 16,
    drain: bool = False,
    errors: Counter[tuple[int, int]] | None = None,
) -> list[list[float]]:
    """Requests per second (2xx answers only) of each request in each round: `rounds` rows,
    one column each.

    All connections send the first request for `seconds`, then the second, and so on, and
    start over `rounds` times (a request started in a turn counts for it). A request with a
    `port` of its own goes to that server (each connection keeps one to every server), so that
    two servers can be compared as closely as two routes. Non-2xx answers are added to
    `errors` by (column, status). With `drain`, a turn starts only once every connection has
    had the answers to the turn before (a slow route's last requests end well after its turn
    does, and would otherwise be served during the next turn, as its own), and its rate is
    taken over the time to its last answer."""
    parent, child = multiprocessing.Pipe()
    encoded = [(request.port or port, request.encode()) for request in requests]
    worker = multiprocessing.Process(
        target=_alternate, args=(encoded, rounds, (seconds, drain), connections, child)
    )
    worker.start()
    while not parent.poll(1.0):  # a generator that died would leave the wait endless
        if not worker.is_alive():
            raise RuntimeError(f"the load generator stopped (exit code {worker.exitcode})")
    counts, lengths, refused = parent.recv()
    worker.join(timeout=30)
    width = len(requests)
    for (column, status), count in sorted(refused.items()):
        request = requests[column]
        _report_errors(f"{request.method} {request.path}", {status: count})
    if errors is not None:
        errors.update(refused)
    rates = [
        count / length if length > 0 else 0.0 for count, length in zip(counts, lengths, strict=True)
    ]
    return [rates[row * width : (row + 1) * width] for row in range(rounds)]


def paired_ratios(rows: list[list[float]], numerator: int, denominator: int) -> list[float]:
    """The ratio of two columns of `alternate`'s rows, round by round, sorted."""
    return sorted(row[numerator] / row[denominator] for row in rows if row[denominator])


def spread(ratios: list[float]) -> str:
    """`paired_ratios` summed up: their median, and their quartiles."""
    return (
        f"{median(ratios):6.1%} (quartiles {ratios[len(ratios) // 4]:.1%} and "
        f"{ratios[3 * len(ratios) // 4]:.1%})"
    )


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


@contextmanager
def server(env: Mapping[str, str], *, factory: str = "bench.apps:create_app") -> Iterator[int]:
    """A one-worker uvicorn serving `factory` on a free loopback port."""
    with server_process(env, factory=factory) as (port, _):
        yield port


@contextmanager
def server_process(
    env: Mapping[str, str], *, factory: str = "bench.apps:create_app"
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`server`, also giving its process (one process: its /proc entry is the server's)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("bench: the server did not start")
            time.sleep(0.1)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=15)
