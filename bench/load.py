"""A small HTTP/1.1 load generator and a server runner for the benchmarks. Loopback only.

The generator runs in a process of its own, keeps C connections alive and sends requests for a
fixed time, so the numbers of two routes measured one after the other compare fairly. It
speaks only what Backline answers (Content-Length bodies), which keeps it fast enough not to be
the bottleneck of a one-worker server. Every run is bounded by its duration.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from bench.support import free_port

HOST = "127.0.0.1"


async def _connection(
    port: int, path: str, headers: str, stop_at: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n".encode()
    done = 0
    try:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            done += 1
    finally:
        writer.close()
    return done


def _run(port: int, path: str, headers: str, seconds: float, connections: int, out: object) -> None:
    async def main() -> tuple[int, list[float]]:
        stop_at = time.perf_counter() + seconds
        latencies: list[float] = []
        counts = await asyncio.gather(
            *(_connection(port, path, headers, stop_at, latencies) for _ in range(connections))
        )
        return sum(counts), latencies

    total, latencies = asyncio.run(main())
    out.send((total / seconds, sorted(latencies)))  # type: ignore[attr-defined]


def measure(
    port: int,
    path: str,
    *,
    seconds: float = 5.0,
    connections: int = 16,
    headers: Mapping[str, str] | None = None,
) -> tuple[float, list[float]]:
    """Requests per second and the sorted latencies of GET `path`, from another process."""
    header_text = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    parent, child = multiprocessing.Pipe()
    worker = multiprocessing.Process(
        target=_run, args=(port, path, header_text, seconds, connections, child)
    )
    worker.start()
    rate, latencies = parent.recv()
    worker.join(timeout=seconds + 30)
    return rate, latencies


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


@contextmanager
def server(env: Mapping[str, str], *, factory: str = "bench.apps:create_app") -> Iterator[int]:
    """A one-worker uvicorn serving `factory` on a free loopback port."""
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
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)
