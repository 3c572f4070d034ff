"""Mixed load: four app processes and two workers on PostgreSQL and Redis, for a bounded time.

`backline serve --workers 4` and two `backline worker` processes run on a throwaway database,
a Redis key prefix of their own, local storage in a temporary directory, an SMTP sink on
loopback for the outbox, and the stand-in chat provider (`bench.chat_upstream`). Every limit
is raised out of reach (BACKLINE_RATE_LIMITS), so a 429 is an error like any other.

The app is started first and the workers once it answers (four processes importing the app
at once are slow enough on two cores). Virtual users, one account each (artists, made with the
accounts service), sign in, send every kind of request once (so that even a run of a few
seconds sends each), then send requests one after another until the time is up, each picked
at random by weight:

    sign-in          POST /api/auth/login
    refresh          POST /api/auth/refresh (the new pair replaces the old)
    me               GET /api/me
    list             GET /api/tracks
    draft, upload    POST /api/tracks, then PUT /api/tracks/{id}/audio: a 32 KiB WAV with its
                     Content-Digest
    chat             POST /api/chat, streamed to its end (`"state":"complete"` in the last event)
    forgot-password  POST /api/auth/forgot-password: an email for the workers to deliver

Every answer is checked: a status other than the one the route promises, a transport error or
a timeout is an error (and not throughput). Latencies are kept from the end of a warm-up
(lazy imports, connection pools; 3 s in the bench) to the end of the window. At the end the
workers get a bounded time to deliver every email queued; a missing one is lost. Recorded in
the report: requests per second, the p50 and p99 latency of each kind, the errors (goal 0) and
the emails lost (goal 0).
`load(seconds=...)` runs it and returns the tally, for the test that proves it in CI.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from backline.accounts import service as accounts
from backline.accounts.models import Role
from backline.config import Settings
from backline.crypto import generate_entry
from backline.db import create_engine, create_sessionmaker
from bench import report
from bench.load import percentile
from bench.support import Sink, free_port, postgres_database, smtp_sink

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HOST = "127.0.0.1"
HUGE = "10000000/minute"
PASSWORD = "a mixed load passphrase 7"  # noqa: S105 - of throwaway accounts
APP_PROCESSES, WORKERS, USERS = 4, 2, 16
WARM_UP = 3.0  # seconds of load before the window measured: lazy imports, pools, caches
START_SECONDS = 300  # four processes import the app side by side, on a machine maybe shared
TIMEOUT = 30.0  # seconds for any one request (and for connecting): past it, an error
DELIVERY_SECONDS = 60.0  # for the workers to deliver what was queued, after the load
WEIGHTS = {
    "me": 30,
    "list": 20,
    "refresh": 10,
    "chat": 10,
    "upload": 10,  # a draft, then its audio
    "sign-in": 5,
    "forgot-password": 5,
}
KINDS = ("sign-in", "refresh", "me", "list", "draft", "upload", "chat", "forgot-password")
RAISED = (
    "global",
    "login",
    "login_account",
    "refresh",
    "upload",
    "forgot_password",
    "chat_message",
)
LIMITS = dict.fromkeys(RAISED, HUGE) | {"chat_tokens": "1000000000/day"}


def _wav(size: int = 32 * 1024) -> tuple[bytes, str]:
    """A valid PCM WAV of about `size` bytes, and its SHA-256 in base64."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(random.Random(7).randbytes((size - 44) // 4 * 4))
    data = buffer.getvalue()
    return data, base64.b64encode(hashlib.sha256(data).digest()).decode()


# ----------------------------------------------------------------------------- the tally


@dataclass
class Tally:
    """Latencies (seconds) by kind, the errors, and what the outbox did."""

    seconds: float  # the window measured, after the warm-up
    opens: float  # when it opens (time.monotonic()): latencies are kept from then on
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: Counter[str] = field(default_factory=Counter)  # "kind: what" -> how many
    queued: int = 0  # emails asked for (202 to forgot-password)
    delivered: int = 0  # of them, received by the SMTP sink

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def lost(self) -> int:
        return self.queued - self.delivered

    def error(self, kind: str, what: str) -> None:
        self.errors[f"{kind}: {what}"] += 1


class _Refused(Exception):
    """An answer other than the one expected."""


def _problem(response: httpx.Response) -> str:
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    return f"{response.status_code} {code or ''}".rstrip()


# ----------------------------------------------------------------------------- a user


class _User:
    def __init__(self, client: httpx.AsyncClient, email: str, tally: Tally) -> None:
        self.client = client
        self.email = email
        self.tally = tally
        self.access = ""
        self.refresh = ""

    async def _send(
        self,
        kind: str,
        method: str,
        path: str,
        expect: int,
        *,
        json: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, timed and checked; an error is counted and raised as _Refused."""
        sent = {"Authorization": f"Bearer {self.access}"} if self.access else {}
        began = time.perf_counter()
        try:
            response = await self.client.request(
                method, path, json=json, content=content, headers={**sent, **(headers or {})}
            )
        except httpx.HTTPError as exc:
            self.tally.error(kind, type(exc).__name__)
            raise _Refused from exc
        took = time.perf_counter() - began
        counted = time.monotonic() - took >= self.tally.opens
        if response.status_code != expect:
            self.tally.error(kind, _problem(response))
            raise _Refused
        if kind == "chat" and '"state":"complete"' not in response.text:
            self.tally.error(kind, "the answer did not complete")
            raise _Refused
        if counted:
            self.tally.latencies[kind].append(took)
        return response

    async def sign_in(self) -> None:
        body = {"email": self.email, "password": PASSWORD}
        self.access = ""
        tokens = (await self._send("sign-in", "POST", "/api/auth/login", 200, json=body)).json()
        self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]

    async def refreshed(self) -> None:
        body = {"refresh_token": self.refresh}
        tokens = (await self._send("refresh", "POST", "/api/auth/refresh", 200, json=body)).json()
        self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]

    async def upload(self, audio: tuple[bytes, str]) -> None:
        data, digest = audio
        draft = await self._send("draft", "POST", "/api/tracks", 201, json={"title": "Mixed"})
        await self._send(
            "upload",
            "PUT",
            f"/api/tracks/{draft.json()['id']}/audio",
            200,
            content=data,
            headers={
                "Content-Type": "audio/wav",
                "Content-Digest": f"sha-256=:{digest}:",
            },
        )

    async def forgot(self) -> None:
        body = {"email": self.email}
        await self._send("forgot-password", "POST", "/api/auth/forgot-password", 202, json=body)
        self.tally.queued += 1

    async def act(self, kind: str, audio: tuple[bytes, str]) -> None:
        if kind == "sign-in":
            await self.sign_in()
        elif kind == "refresh":
            await self.refreshed()
        elif kind == "me":
            await self._send("me", "GET", "/api/me", 200)
        elif kind == "list":
            await self._send("list", "GET", "/api/tracks", 200)
        elif kind == "upload":
            await self.upload(audio)
        elif kind == "chat":
            await self._send("chat", "POST", "/api/chat", 200, json={"message": "How do I?"})
        else:
            await self.forgot()


async def _drive(
    port: int, emails: list[str], *, seconds: float, warmup: float, seed: int
) -> Tally:
    """Each user (their starts spread over the warm-up) signs in and sends every kind of
    request once (a tour: every kind is sent however short the run), then requests picked by
    weight until the window closes."""
    tally = Tally(seconds, opens=time.monotonic() + warmup)
    closes = tally.opens + seconds
    audio = _wav()
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    timeout = httpx.Timeout(TIMEOUT)  # connecting too: on a busy machine a connect can wait

    async def one(email: str, index: int) -> None:
        chooser = random.Random(seed + index)
        await asyncio.sleep(warmup * index / len(emails))  # no burst of sign-ins at the start
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=timeout) as client:
            user = _User(client, email, tally)
            tour = list(kinds)
            signed_in = False
            while tour or time.monotonic() < closes:  # bounded: each request times out
                try:
                    if not signed_in:
                        await user.sign_in()
                        signed_in = True
                        continue
                    kind = tour.pop(0) if tour else chooser.choices(kinds, weights)[0]
                    await user.act(kind, audio)
                except _Refused:
                    signed_in = False  # start over from a sign-in, as a client would
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(one(email, index) for index, email in enumerate(emails)))
    return tally


# ----------------------------------------------------------------------------- processes


async def _artists(url: str, emails: list[str]) -> None:
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for email in emails:
                await accounts.create(
                    session,
                    email=email,
                    password=PASSWORD,
                    display_name="Mixed Artist",
                    role=Role.ARTIST,
                    verified=True,
                )
    finally:
        await engine.dispose()


def _wait_healthy(process: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"mixed bench: {what} exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"mixed bench: {what} did not start in {START_SECONDS} s")
        time.sleep(0.2)


@contextmanager
def _process(
    command: list[str], env: Mapping[str, str], *, port: int | None, what: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A process of its own, its output kept in `log`; stopped with SIGTERM (then SIGKILL)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        if port is not None:
            try:
                _wait_healthy(process, port, what)
            except SystemExit as exc:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{exc}; its output ended:\n{tail}") from None
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _delivered(sink: Sink, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while len(sink.counts) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(sink.counts)


def _clear_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    except redis.RedisError:
        pass  # the servers could not have written there either
    finally:
        client.close()


def load(*, seconds: float, warmup: float = 0.0, users: int = USERS, seed: int = 21) -> Tally:
    """Start everything, drive `users` virtual users for `warmup` then `seconds` (latencies
    kept only for the latter; errors for both), stop everything."""
    prefix = f"backline-bench-{uuid.uuid4().hex[:8]}"
    emails = [f"mixed{index}@example.com" for index in range(users)]
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="backline-mixed-")))
        stack.callback(_clear_prefix, prefix)
        url = stack.enter_context(postgres_database())
        sink, smtp_port = stack.enter_context(smtp_sink())
        asyncio.run(_artists(url, emails))
        upstream_port = free_port()
        stack.enter_context(
            _process(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.chat_upstream:create_app",
                    "--factory",
                    "--host",
                    HOST,
                    "--port",
                    str(upstream_port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                {"BENCH_CHAT_TOKENS": "20", "BENCH_CHAT_GAP": "0"},
                port=upstream_port,
                what="the stand-in chat provider",
                log=root / "upstream.log",
            )
        )
        env = {
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": url,
            "BACKLINE_REDIS_URL": REDIS_URL,
            "BACKLINE_REDIS_PREFIX": prefix,
            "BACKLINE_SECRET_KEY": uuid.uuid4().hex * 2,  # one key for every process
            "BACKLINE_ENCRYPTION_KEYS": generate_entry(),
            "BACKLINE_RATE_LIMITS": json.dumps(LIMITS),
            "BACKLINE_LOG_LEVEL": "WARNING",
            "BACKLINE_VAR_DIR": str(root / "var"),
            "BACKLINE_STORAGE_BACKEND": "local",
            "BACKLINE_STORAGE_DIR": str(root / "storage"),
            "BACKLINE_OUTBOX_WORKER": "external",
            "BACKLINE_EMAIL_BACKEND": "smtp",
            "BACKLINE_SMTP_HOST": HOST,
            "BACKLINE_SMTP_PORT": str(smtp_port),
            "BACKLINE_SMTP_STARTTLS": "false",
            "BACKLINE_CHAT_BASE_URL": f"http://{HOST}:{upstream_port}/v1",
            "BACKLINE_CHAT_MODEL": "bench",
        }
        port = free_port()
        serve = [sys.executable, "-m", "backline", "serve", "--host", HOST, "--port", str(port)]
        server = stack.enter_context(
            _process(
                [*serve, "--workers", str(APP_PROCESSES)],
                env,
                port=port,
                what="backline serve",
                log=root / "serve.log",
            )
        )
        # Started once the app is up: four processes importing it are slow enough alone.
        workers = [
            stack.enter_context(
                _process(
                    [sys.executable, "-m", "backline", "worker"],
                    env,
                    port=None,
                    what=f"worker {index}",
                    log=root / f"worker-{index}.log",
                )
            )
            for index in range(WORKERS)
        ]
        tally = asyncio.run(_drive(port, emails, seconds=seconds, warmup=warmup, seed=seed))
        for process, what in ((server, "backline serve"), *((w, "a worker") for w in workers)):
            if process.poll() is not None:
                tally.error("processes", f"{what} exited with status {process.returncode}")
        tally.delivered = _delivered(sink, tally.queued, DELIVERY_SECONDS)
        if tally.error_count:
            print(f"mixed load: the server's output\n{(root / 'serve.log').read_text()[-4000:]}")
    return tally


def run(*, quick: bool = False) -> None:
    seconds = 15.0 if quick else 60.0
    tally = load(seconds=seconds, warmup=WARM_UP)
    ms = 1000
    setup = f"{APP_PROCESSES} app processes, {WORKERS} workers, {USERS} users, {seconds:g} s"
    print(f"mixed load ({setup}; PostgreSQL, Redis)")
    for kind in KINDS:
        values = sorted(tally.latencies[kind])
        p50, p99 = percentile(values, 0.5) * ms, percentile(values, 0.99) * ms
        print(f"  {kind:16} {len(values):6} requests, p50 {p50:7.1f} ms, p99 {p99:7.1f} ms")
        for name, value in (("p50", p50), ("p99", p99)):
            report.record(
                bench="mixed",
                measure=f"{kind} {name}",
                value=value,
                unit="ms",
                note=f"{len(values)} requests" if name == "p50" else "",
            )
    rate = tally.requests / seconds
    print(f"  {tally.requests} requests in all ({rate:.0f}/s), {tally.error_count} errors")
    for what, count in tally.errors.most_common():
        print(f"    {count} x {what}")
    print(f"  emails: {tally.queued} queued, {tally.delivered} delivered by the workers")
    report.record(
        bench="mixed",
        measure="requests answered as expected",
        value=rate,
        unit="req/s",
        note=f"{tally.requests} in {seconds:g} s; {setup}",
    )
    report.record(
        bench="mixed",
        measure="errors (any other status, transport errors, timeouts)",
        value=tally.error_count,
        goal=report.equal(0),
        note="; ".join(f"{n} x {what}" for what, n in tally.errors.most_common(3)),
    )
    report.record(
        bench="mixed",
        measure="emails lost (queued, not delivered by the workers)",
        value=tally.lost,
        goal=report.equal(0),
        note=f"{tally.queued} queued",
    )
