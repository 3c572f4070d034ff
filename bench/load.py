"""A small HTTP/1.1 load generator and a server runner for the benchmarks. Loopback only.

The generator runs in a process of its own (on uvloop, so that it takes as little as it can of
the cores it shares with the server), keeps C connections alive and sends requests for a fixed
time. It speaks only what Backline answers (Content-Length bodies), which keeps it fast
enough not to be the bottleneck of a one-worker server. Every run is bounded by its duration.

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
) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)


async def _connection(
    port: int, request: bytes, window: tuple[float, float], latencies: list[float]
) -> int:
    """Send `request` until the window closes; count the exchanges that end inside it."""
    reader, writer = await asyncio.open_connection(HOST, port)
    opens, closes = window
    done = 0
    try:
        while time.monotonic() < closes:
            began = time.monotonic()
            await _exchange(reader, writer, request)
            ended = time.monotonic()
            if opens <= ended <= closes:
                latencies.append(ended - began)
                done += 1
    finally:
        writer.close()
    return done


def _run(
    port: int, request: bytes, window: tuple[float | None, float], connections: int, out: object
) -> None:
    opens, seconds = window
    opens = time.monotonic() if opens is None else opens  # by default, from this process's start

    async def main() -> tuple[int, list[float]]:
        latencies: list[float] = []
        counts = await asyncio.gather(
            *(
                _connection(port, request, (opens, opens + seconds), latencies)
                for _ in range(connections)
            )
        )
        return sum(counts), latencies

    total, latencies = uvloop.run(main())
    out.send((total / seconds, sorted(latencies)))  # type: ignore[attr-defined]


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
) -> Callable[[], tuple[float, list[float]]]:
    """Start a load in another process; the returned function waits for (req/s, latencies).

    Only exchanges that end in the window of `seconds` from `opens` (a `time.monotonic()`
    reading, a clock all processes of this machine share; by default, when the load process
    starts) are counted. Sending starts at once, so a later `opens` counts the server in its
    stride: from a cold start, nothing ends until the first requests have been served.
    """
    parent, child = multiprocessing.Pipe()
    request = _request(method, path, headers, body)
    window = (opens, seconds)
    worker = multiprocessing.Process(target=_run, args=(port, request, window, connections, child))
    worker.start()

    def result() -> tuple[float, list[float]]:
        rate, latencies = parent.recv()
        worker.join(timeout=30)
        return rate, latencies

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

    def encode(self) -> bytes:
        return _request(self.method, self.path, self.headers, self.body)


async def _turns(port: int, turns: list[tuple[int, bytes, float]], counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for index, request, stop_at in turns:
            while time.perf_counter() < stop_at:
                await _exchange(reader, writer, request)
                counts[index] += 1
    finally:
        writer.close()


def _alternate(
    port: int, requests: list[bytes], rounds: int, seconds: float, connections: int, out: Any
) -> None:
    async def main() -> list[int]:
        stop_at = time.perf_counter() + 0.05
        turns = []
        for index in range(rounds * len(requests)):
            stop_at += seconds
            turns.append((index, requests[index % len(requests)], stop_at))
        counts = [0] * len(turns)
        await asyncio.gather(*(_turns(port, turns, counts) for _ in range(connections)))
        return counts

    out.send(uvloop.run(main()))


def alternate(
    port: int,
    requests: Sequence[Request],
    *,
    rounds: int,
    seconds: float = 0.25,
    connections: int = 16,
) -> list[list[float]]:
    """Requests per second of each request in each round: `rounds` rows, one column each.

    All connections send the first request for `seconds`, then the second, and so on, and
    start over `rounds` times (a request started in a turn counts for it)."""
    parent, child = multiprocessing.Pipe()
    encoded = [request.encode() for request in requests]
    worker = multiprocessing.Process(
        target=_alternate, args=(port, encoded, rounds, seconds, connections, child)
    )
    worker.start()
    counts: list[int] = parent.recv()
    worker.join(timeout=30)
    width = len(requests)
    return [
        [count / seconds for count in counts[row * width : (row + 1) * width]]
        for row in range(rounds)
    ]


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
