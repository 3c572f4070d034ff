"""Three app processes sharing Redis admit exactly one limit's worth of a burst, not three."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, into_one_window

LIMIT = 50
BURST = 300


@pytest.mark.slow
@pytest.mark.redis
async def test_a_burst_over_three_processes_admits_exactly_the_limit(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    ports = [free_port() for _ in range(3)]
    env = {
        **os.environ,
        "BACKLINE_ENV": "test",
        "BACKLINE_REDIS_URL": redis_url,
        "BACKLINE_REDIS_PREFIX": redis_prefix,
        "BACKLINE_RATE_LIMITS": json.dumps({"global": f"{LIMIT}/minute"}),
        "BACKLINE_LOG_LEVEL": "WARNING",
    }
    processes = []
    for port in ports:
        workdir = tmp_path / str(port)
        workdir.mkdir()
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220 - starting a process does not block
                [sys.executable, "-m", "backline", "serve", "--port", str(port)],
                cwd=workdir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        async with httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=150)
        ) as client:
            for port in ports:  # all three up (health probes are not limited)
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, f"process on port {port} did not start"
                    await asyncio.sleep(0.1)

            into_one_window(margin=10)
            responses = await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{ports[i % 3]}/docs") for i in range(BURST))
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == BURST - LIMIT
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"]
