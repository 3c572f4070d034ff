"""`backline serve --workers 3` over real sockets, under each server: a scrape, whichever
process answers it, reads every process's counts summed, and the gauges of the processes
alive."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.scrape import value
from tests.served import SERVERS, Served, served

TOKEN = "scraper-token-0123456789-abcdef"
WORKERS = 3
BATCH = 60
MOST_REQUESTS = 6000  # enough for the kernel to hand each worker some connections


def scrape(server: Served) -> str:
    response = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.text


def healthz_answered(text: str) -> float:
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    return value(text, "backline_http_requests_total", **labels) or 0.0


def per_process(run_dir: Path) -> dict[int, float]:
    """The /healthz count in each process's own file, read apart from the others'."""
    counts = {}
    for path in run_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        families = MultiProcessCollector.merge([str(path)], accumulate=True)
        counts[pid] = sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "backline_http_requests_total"
            and sample.labels.get("route") == "/healthz"
            and sample.labels.get("status") == "200"
        )
    return counts


def started(output: str) -> int:
    """How many processes logged the application's start (each worker's lifespan does)."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return sum(json.loads(line).get("event") == "started" for line in lines)


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def one_request(url: str) -> int:
    # A connection of its own each time: the kernel picks the worker that accepts it.
    return httpx.get(url, timeout=10, headers={"Connection": "close"}).status_code


@pytest.mark.slow
@pytest.mark.parametrize("server_name", SERVERS)
def test_three_workers_read_as_one_server(tmp_path: Path, server_name: str) -> None:
    base = tmp_path / "temporary"
    base.mkdir()
    with served(
        tmp_path / "work",
        workers=WORKERS,
        server=server_name,
        BACKLINE_METRICS_TOKEN=TOKEN,
        TMPDIR=str(base),
    ) as server:
        (run_dir,) = base.iterdir()  # made by `serve` for this run
        for _ in range(1200):  # until every worker has started (bounded): the first answers
            if started(server.output) >= WORKERS:  # before the rest
                break
            time.sleep(0.1)
        assert run_dir.name.startswith("backline-metrics-")
        before = healthz_answered(scrape(server))
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while True:
                statuses = list(pool.map(one_request, [f"{server.url}/healthz"] * BATCH))
                assert statuses == [200] * BATCH
                sent += BATCH
                served_some = [pid for pid, n in per_process(run_dir).items() if n > 0]
                if len(served_some) >= WORKERS or sent >= MOST_REQUESTS:
                    break
        counts = per_process(run_dir)
        workers = [pid for pid, n in counts.items() if n > 0]
        assert len(workers) == WORKERS, counts
        assert all(parent_of(pid) == server.process.pid for pid in workers)

        # Every scrape, whichever worker answers it, reads the sum of all three.
        for _ in range(2 * WORKERS):
            text = scrape(server)
            assert healthz_answered(text) == before + sent == sum(counts.values())
            # Nothing else in flight: the scrape alone, however many processes there are.
            assert value(text, "backline_http_requests_in_flight") == 1

        # A worker killed outright: its counts stay in the sum, its live gauges go.
        victim = workers[0]
        assert (run_dir / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGKILL)
        for _ in range(300):  # the server replaces it; the reaper drops its gauges: bounded
            if not (run_dir / f"gauge_livesum_{victim}.db").exists():
                break
            time.sleep(0.1)
        assert not (run_dir / f"gauge_livesum_{victim}.db").exists()
        text = scrape(server)
        assert healthz_answered(text) == before + sent
        assert value(text, "backline_http_requests_in_flight") == 1
    assert not run_dir.exists()  # removed when the server stopped
