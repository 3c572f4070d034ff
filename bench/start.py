"""Start-up: how long the command line takes, and what an idle process holds.

1. Wall time of `backline --help` and of `backline create-user` (against a migrated PostgreSQL
   database, password on standard input: the whole command, Argon2id hash included), the
   median of N runs each (goal < 0.8 s), beside `python -c pass` from the same venv measured
   in the same run: the ratio says how much of a command is Backline's own start-up.
2. The resident memory (VmRSS in /proc/<pid>/status) of an idle worker of `backline serve
   --workers 2` (the larger of the two, once /healthz answers and their memory has settled)
   and of an idle `backline worker` (goal < 120 MiB each), configured as a deployment of
   several workers is: PostgreSQL, Redis, local storage, the assistant not configured.

The modules each command must not import are checked by tests/test_lean_start.py; this module
only measures.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from statistics import median

import httpx
import redis

from bench import report
from bench.support import free_port, postgres_database

HOST = "127.0.0.1"
REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MIB = 1024 * 1024
TIME_GOAL, RSS_GOAL = 0.8, 120 * MIB
PASSWORD = "a benchmark passphrase 9"  # noqa: S105 - a throwaway account's
SETTLE_SECONDS = 2.0  # an idle process's memory, read this long after it is ready


def _verdict(met: bool) -> str:
    return "goal met" if met else "goal missed"


def _backline() -> list[str]:
    """The `backline` script next to this interpreter (the venv's), else `python -m backline`."""
    script = Path(sys.executable).with_name("backline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "backline"]


def _environment(url: str, workdir: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLINE_")}
    env.pop("DATABASE_URL", None)
    env.update(
        BACKLINE_ENV="development",
        BACKLINE_DATABASE_URL=url,
        BACKLINE_VAR_DIR=workdir,
        BACKLINE_REDIS_URL=REDIS_URL,
        BACKLINE_REDIS_PREFIX=prefix,
        BACKLINE_LOG_LEVEL="WARNING",
    )
    return env


def _timed(
    argv: Callable[[int], Sequence[str]],
    env: Mapping[str, str],
    *,
    runs: int,
    stdin: str | None = None,
) -> tuple[float, float]:
    """Median wall seconds, and median CPU seconds (user and system), of `runs` runs of
    `argv(run)`, each checked to succeed. On a shared machine the CPU time is the steadier of
    the two: it does not count time spent waiting for a core."""
    walls, cpus = [], []
    for number in range(runs):
        command = argv(number)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(
            command, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"start bench: {' '.join(command)} failed: {done.stderr.strip()}")
    return median(walls), median(cpus)


def _rss(pid: int) -> int:
    """Resident memory of a process in bytes (VmRSS), 0 when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def _running(argv: Sequence[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield process
    finally:  # the whole group it leads (its own session): serve's workers stop with it
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


def _settled(process: subprocess.Popen[bytes], pids: Callable[[], list[int]]) -> int:
    """The largest RSS among `pids()` once it has stopped growing (two readings a second apart
    within 1% of each other, at most 60 s), then `SETTLE_SECONDS` later."""
    previous, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if process.poll() is not None:
            raise SystemExit(f"start bench: {process.args} exited")
        current = max((_rss(pid) for pid in pids()), default=0)
        if previous and abs(current - previous) <= previous // 100:
            break
        previous = current
    time.sleep(SETTLE_SECONDS)
    return max((_rss(pid) for pid in pids()), default=0)


def _serve_rss(env: Mapping[str, str]) -> int:
    port = free_port()
    argv = [*_backline(), "serve", "--host", HOST, "--port", str(port), "--workers", "2"]
    with _running(argv, env) as process:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("start bench: `backline serve` did not start")
            time.sleep(0.1)
        # The workers are the children of the process started (beside multiprocessing's
        # small resource tracker, which the largest never is).
        return _settled(process, lambda: _children(process.pid))


def _worker_rss(env: Mapping[str, str]) -> int:
    # The worker announces nothing when ready: its memory is read once it has settled.
    with _running([*_backline(), "worker"], env) as process:
        return _settled(process, lambda: [process.pid])


def run(*, quick: bool = False) -> None:
    started = time.perf_counter()
    runs = 3 if quick else 11
    batch = uuid.uuid4().hex[:8]
    prefix = f"backline-bench-{batch}"
    lines: list[str] = []
    try:
        with postgres_database() as url, tempfile.TemporaryDirectory() as workdir:
            lines = _measure(_environment(url, workdir, prefix), runs=runs, batch=batch)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for key in client.scan_iter(match=f"{prefix}:*"):
                client.delete(key)
        finally:
            client.close()
    print(f"start (PostgreSQL, Redis, local storage; {time.perf_counter() - started:.0f} s)")
    for line in lines:
        print(line)


def _measure(env: Mapping[str, str], *, runs: int, batch: str) -> list[str]:
    baseline, baseline_cpu = _timed(lambda _: [sys.executable, "-c", "pass"], env, runs=runs)
    lines = [
        f"  python -c pass          {baseline:6.3f} s ({baseline_cpu:.3f} s CPU): the interpreter"
    ]
    timed = {
        "backline --help": _timed(lambda _: [*_backline(), "--help"], env, runs=runs),
        "backline create-user": _timed(
            lambda n: [
                *_backline(),
                "create-user",
                f"--email=bench-{batch}-{n}@example.com",
                "--password-stdin",
            ],
            env,
            runs=runs,
            stdin=f"{PASSWORD}\n",
        ),
    }
    for name, (seconds, cpu) in timed.items():
        report.record(
            bench="start",
            measure=f"`{name}`, wall time",
            value=seconds,
            unit="s",
            baseline=baseline,
            goal=report.below(TIME_GOAL),
            note=f"median of {runs}; {cpu:.3f} s CPU; baseline `python -c pass`",
        )
        lines.append(
            f"  {name:<23} {seconds:6.3f} s ({cpu:.3f} s CPU), {seconds / baseline:5.1f}x python "
            f"-c pass (median of {runs}; goal < {TIME_GOAL} s: {_verdict(seconds < TIME_GOAL)})"
        )
    for name, measure in (("a serve worker", _serve_rss), ("backline worker", _worker_rss)):
        rss = measure(env)
        report.record(
            bench="start",
            measure=f"idle RSS, {name}",
            value=rss / MIB,
            unit="MiB",
            goal=report.below(RSS_GOAL / MIB),
        )
        lines.append(
            f"  idle RSS, {name:<15} {rss / MIB:6.1f} MiB "
            f"(goal < {RSS_GOAL // MIB} MiB: {_verdict(0 < rss < RSS_GOAL)})"
        )
    return lines
