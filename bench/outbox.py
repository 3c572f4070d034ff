"""Outbox delivery to a loopback SMTP sink, on PostgreSQL.

Baseline (same run): the same number of messages sent straight to the sink with aiosmtplib,
20 at a time, no database. Then the outbox with 1 and with 2 `backline worker` processes:
messages per second and the ratio to the baseline. Last, a crash run: 10,000 messages, two
workers, one killed with SIGKILL halfway; how many messages were lost (goal 0) and how many
arrived twice (at most the batch the dead worker had in flight).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage

import aiosmtplib

from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.email import service as outbox
from bench import report
from bench.support import Sink, postgres_database, smtp_sink

BATCH = 20


async def _queue(url: str, count: int) -> None:
    settings = Settings(env="test", database_url=url)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    for start in range(0, count, 1000):
        async with sessions() as session, session.begin():
            for i in range(start, min(count, start + 1000)):
                await outbox.enqueue(
                    session,
                    settings=settings,
                    template="signup_attempt",
                    to_address=f"bench{i}@example.com",
                )
    await engine.dispose()


async def _baseline(port: int, count: int) -> None:
    async def one(i: int) -> None:
        message = EmailMessage()
        message["From"] = "bench@example.com"
        message["To"] = f"bench{i}@example.com"
        message["Subject"] = "baseline"
        message["Message-ID"] = f"<baseline-{i}@example.com>"
        message.set_content("x" * 600)
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)

    for start in range(0, count, BATCH):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + BATCH))))


def _workers(url: str, port: int, n: int) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "BACKLINE_ENV": "test",
        "BACKLINE_DATABASE_URL": url,
        "BACKLINE_EMAIL_BACKEND": "smtp",
        "BACKLINE_SMTP_HOST": "127.0.0.1",
        "BACKLINE_SMTP_PORT": str(port),
        "BACKLINE_SMTP_STARTTLS": "false",
        "BACKLINE_EMAIL_TIMEOUT": "2",
        "BACKLINE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "backline", "worker", "--batch-size", str(BATCH)]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(n)
    ]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=30)


def _wait_for(sink: Sink, unique: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while len(sink.counts) < unique:
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _throughput(workers: int, count: int) -> float:
    with postgres_database() as url, smtp_sink() as (sink, port):
        asyncio.run(_queue(url, count))
        processes = _workers(url, port, workers)
        try:
            if not _wait_for(sink, count, timeout=600):
                raise SystemExit(f"outbox bench: only {len(sink.counts)} of {count} arrived")
            return sink.rate()  # first to last arrival: process start-up is not counted
        finally:
            _stop(processes)


def _crash(count: int) -> tuple[int, int]:
    with postgres_database() as url, smtp_sink() as (sink, port):
        asyncio.run(_queue(url, count))
        processes = _workers(url, port, 2)
        try:
            _wait_for(sink, count // 2, timeout=600)
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait()
            _wait_for(sink, count, timeout=120)
            time.sleep(12)  # past the dead worker's lease: its batch is re-sent, if at all
        finally:
            _stop(processes)
        lost = count - len(sink.counts)
        duplicated = sum(n - 1 for n in sink.counts.values())
        return lost, duplicated


def run(*, quick: bool = False) -> None:
    count = 300 if quick else 2000
    crash_count = 1000 if quick else 10_000
    with smtp_sink() as (sink, port):
        asyncio.run(_baseline(port, count))
        baseline = sink.rate()
    one = _throughput(1, count)
    two = _throughput(2, count)
    lost, duplicated = _crash(crash_count)
    print(f"outbox delivery, {count} messages to a loopback SMTP sink, PostgreSQL")
    print(f"  baseline: direct aiosmtplib, {BATCH} at a time   {baseline:8.0f} msg/s")
    print(f"  outbox, 1 worker                          {one:8.0f} msg/s  {one / baseline:6.1%}")
    print(f"  outbox, 2 workers                         {two:8.0f} msg/s  {two / baseline:6.1%}")
    print(f"crash run: {crash_count} messages, 2 workers, one SIGKILLed halfway")
    print(f"  lost {lost} (goal 0), duplicated {duplicated} (bound: one batch of {BATCH})")
    for workers, rate in ((1, one), (2, two)):
        report.record(
            bench="outbox",
            measure=f"delivery, {workers} worker{'s' if workers > 1 else ''}, against direct SMTP",
            value=rate,
            unit="msg/s",
            baseline=baseline,
            note=f"{count} messages to a loopback SMTP sink; direct: {BATCH} at a time",
        )
    crash = f"{crash_count} messages, 2 workers, one SIGKILLed halfway"
    report.record(
        bench="outbox",
        measure="crash run: messages lost",
        value=lost,
        goal=report.equal(0),
        note=crash,
    )
    report.record(
        bench="outbox",
        measure="crash run: messages duplicated",
        value=duplicated,
        goal=report.at_most(BATCH),
        note="at most the batch the dead worker had in flight",
    )
