"""Metrics that hold across the processes of `backline serve --workers N`.

Each worker process counts on its own, and a scrape reaches one of them, so with more than
one worker the values go through prometheus-client's multiprocess mode: every process writes
its values to memory-mapped files in the directory named by `PROMETHEUS_MULTIPROC_DIR`, and
the process answering `/metrics` reads all the files: counters and histograms are summed over
every process the run has had (a restarted worker's counts stay), gauges combine as each
one's `multiprocess_mode` says (`livesum`, `livemax`: the processes alive).

`serve` makes that directory itself, fresh for the run (`shared_by_workers`), in the system's
temporary directory (`TMPDIR`, best a tmpfs); the workers inherit the variable naming it; it
is removed when `serve` stops. (The variable is read as prometheus-client is imported, so it
is not one to set by hand: whatever process imports the package with it set writes there.)
Meanwhile a thread of the parent process looks every second for workers that have died (a
crash, a SIGKILL; uvicorn starts another) and has their live gauges dropped
(`mark_process_dead`); a worker stopping normally drops its own (`forget_this_process`). With
one process nothing of this is used: the values stay in the process's memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
REAP_EVERY = 1.0
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def shared_directory() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def registry() -> Collector:
    """What a scrape collects: every process's files in multiprocess mode, else this process's
    own registry."""
    directory = shared_directory()
    if directory is None:
        return REGISTRY
    return MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]


def forget_this_process() -> None:
    """Drop this process's live gauges, as it stops (its counters stay in the sums)."""
    directory = shared_directory()
    if directory is not None:
        mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(directory: Path) -> list[int]:
    """Drop the live gauges of the processes that are gone; answers their IDs."""
    gone = set()
    for path in directory.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match is not None and not _alive(pid := int(match.group(1))):
            gone.add(pid)
    for pid in gone:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return sorted(gone)


def _reap_until(stop: threading.Event, directory: Path) -> None:
    while not stop.wait(REAP_EVERY):
        with contextlib.suppress(OSError):  # a file removed meanwhile: the next round sees
            reap(directory)


@contextlib.contextmanager
def shared_by_workers(workers: int) -> Iterator[Path | None]:
    """With `workers` > 1, a fresh directory for this run's values, named to the workers
    through the environment, reaped while they run, and removed afterwards."""
    if workers <= 1:
        yield None
        return
    before = os.environ.get(ENV)
    directory = Path(tempfile.mkdtemp(prefix="backline-metrics-"))
    os.environ[ENV] = str(directory)
    stop = threading.Event()
    reaper = threading.Thread(
        target=_reap_until, args=(stop, directory), name="metrics-reaper", daemon=True
    )
    reaper.start()
    try:
        yield directory
    finally:
        stop.set()
        reaper.join()
        shutil.rmtree(directory, ignore_errors=True)
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
