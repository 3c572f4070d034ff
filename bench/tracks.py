"""Tracks: listing an artist's catalogue, and receiving audio, on PostgreSQL and Redis.

1. Requests per second of `GET /api/tracks?limit=100` (an artist's 100 tracks with full
   metadata, bearer token) against the bare `/bench/constant` of the same server in the same
   run (goal >= 10%).
2. `PUT /api/tracks/{id}/audio` of a generated WAV (100 MiB and 1 GiB; 8 and 32 MiB with
   --quick), streamed from disk with its Content-Digest, to the local backend and to S3 (moto on
   loopback, keeping objects in its memory): MiB/s from the first byte sent to the response
   (and how much of that came after the last byte: storing), against `cp` then `sha256sum` of
   the same file in the same run, the better of two (goal for local storage: >= 70%), and the
   growth of the server's peak RSS over its RSS just before the upload (goal < 64 MiB, every
   size). Every upload gets a fresh server (and a fresh moto), warmed by a small upload; its peak
   RSS is then reset (/proc/<pid>/clear_refs) so that VmHWM measures this upload alone.

Every file lives in a temporary directory removed at the end; every server listens on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from statistics import median

import boto3
import httpx
import redis

from backline.accounts import service as accounts
from backline.accounts.models import Role
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.tracks import service as tracks
from backline.tracks.schemas import TrackCreate
from bench import report
from bench.load import (
    HOST,
    Request,
    alternate,
    measure,
    paired_ratios,
    percentile,
    server,
    server_process,
)
from bench.support import free_port, postgres_database

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL, PASSWORD = "artist@example.com", "a benchmark passphrase 9"
HUGE = "10000000/minute"
MIB = 1024 * 1024
CHUNK = MIB  # what the client sends at a time, read from the file
TRACKS = 100
QUICK_SIZES = (8 * MIB, 32 * MIB)
FULL_SIZES = (100 * MIB, 1024 * MIB)
WARM_UP = 2 * MIB  # one small upload first: storage clients, thread pools, lazy imports
RSS_GOAL, RATIO_GOAL, LOCAL_GOAL = 64 * MIB, 0.10, 0.70
BUCKET = "backline-bench"
REGION = "us-east-1"
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
CHANNELS, SAMPLE_WIDTH, RATE = 2, 2, 48_000  # 16-bit stereo at 48 kHz: 1 GiB is 93 minutes
MOTO = """
import sys
from moto.server import ThreadedMotoServer
ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False).start()
sys.stdin.read()  # until the bench closes the pipe or ends
"""


def _verdict(met: bool) -> str:
    return "goal met" if met else "goal missed"


def _mib(size: float) -> str:
    return f"{size / MIB:g} MiB" if size < 1024 * MIB else f"{size / 1024 / MIB:g} GiB"


# ----------------------------------------------------------------------------- seeding


def _metadata(i: int) -> TrackCreate:
    return TrackCreate.model_validate(
        {
            "title": f"Bench track {i}",
            "primary_artist": "The Bench Band",
            "featured_artists": ["Guest One", "Guest Two"],
            "genre": "Rock",
            "explicit": i % 2 == 0,
            "language": "en",
            "release_date": date(2027, 1, 1) + timedelta(days=i),
            "isrc": f"USRC176078{i:02d}",  # python-stdnum checks it
            "credits": [
                {"name": "A. Writer", "role": "writer", "split": "50"},
                {"name": "B. Producer", "role": "producer", "split": "32.50"},
                {"name": "C. Player", "role": "performer", "split": "17.50"},
            ],
        }
    )


async def _seed(url: str) -> None:
    """An artist (role set as staff approval would) with TRACKS complete drafts."""
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            artist = await accounts.create(
                session,
                email=EMAIL,
                password=PASSWORD,
                display_name="Bench Artist",
                role=Role.ARTIST,
                verified=True,
            )
            for i in range(TRACKS):
                await tracks.create(session, owner=artist, data=_metadata(i))
    finally:
        await engine.dispose()


# ----------------------------------------------------------------------------- files


def _wav(path: Path, size: int, block: bytes) -> str:
    """A valid PCM WAV of exactly `size` bytes (header included); returns its SHA-256, base64.

    `wave` writes the header for the frames announced; the data is `block` repeated, so a
    gigabyte takes seconds to make.
    """
    frame = CHANNELS * SAMPLE_WIDTH
    frames = (size - 44) // frame
    with wave.open(str(path), "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(RATE)
        out.setnframes(frames)
        remaining = frames * frame
        while remaining > 0:  # bounded: shrinks by up to len(block) each pass
            piece = block[: min(len(block), remaining)]
            out.writeframesraw(piece)
            remaining -= len(piece)
    with path.open("rb") as file:
        return base64.b64encode(hashlib.file_digest(file, "sha256").digest()).decode()


def _copy_and_hash(path: Path, target: Path) -> float:
    """Seconds for `cp` then `sha256sum` of the copy: the best of two runs."""
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        subprocess.run(["cp", str(path), str(target)], check=True)
        subprocess.run(["sha256sum", str(target)], check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - began)
        target.unlink()
    return best


# ----------------------------------------------------------------------------- servers


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> bool:
    """Set VmHWM back to VmRSS (Linux: `5` to clear_refs); False where refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextmanager
def _moto() -> Iterator[str]:
    """A moto S3 server in a process of its own on a free loopback port, with the bucket."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("tracks bench: moto did not start")
            time.sleep(0.1)
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=BUCKET)
        yield url
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.terminate()
        process.wait(timeout=15)


def _put(client: httpx.Client, path: Path, digest: str) -> tuple[float, float, httpx.Response]:
    """A new draft's audio, streamed from the file: seconds from the first byte sent to the
    response, seconds from the last byte sent to the response, and the answer."""
    draft = client.post("/api/tracks", json={"title": f"Upload {path.name}"})
    if draft.status_code != 201:
        raise SystemExit(f"tracks bench: creating a draft answered {draft.status_code}")
    sent: list[float] = []  # when the first chunk went, then when the body was done

    def body() -> Iterator[bytes]:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):  # bounded by the file's size
                if not sent:
                    sent.append(time.perf_counter())
                yield chunk
        sent.append(time.perf_counter())

    response = client.put(
        f"/api/tracks/{draft.json()['id']}/audio",
        content=body(),
        headers={
            "Content-Type": "audio/wav",
            "Content-Length": str(path.stat().st_size),
            "Content-Digest": f"sha-256=:{digest}:",
        },
    )
    answered = time.perf_counter()
    return answered - sent[0], answered - sent[-1], response


@dataclass(frozen=True)
class Upload:
    """One measured upload: seconds in all and after the body, peak RSS growth, any error."""

    seconds: float
    tail: float
    growth: int
    reset: bool  # whether the peak was reset after the warm-up
    error: str | None = None


def _upload(
    env: Mapping[str, str], token: str, path: Path, digest: str, warm: tuple[Path, str]
) -> Upload:
    with (
        server_process(env) as (port, process),
        httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(600, connect=10),  # a read waits for storing, after the body
        ) as client,
    ):
        *_, warmed = _put(client, *warm)
        if not warmed.is_success:
            return Upload(0, 0, 0, False, f"the warm-up upload answered {_problem(warmed)}")
        reset = _reset_peak(process.pid)
        before = _memory(process.pid)
        seconds, tail, response = _put(client, path, digest)
        after = _memory(process.pid)
    upload = Upload(seconds, tail, after["VmHWM"] - before["VmRSS"], reset)
    if not response.is_success:
        return replace(upload, error=f"answered {_problem(response)}")
    audio = response.json().get("audio") or {}
    expected = base64.b64decode(digest).hex()
    if audio.get("size") != path.stat().st_size or audio.get("sha256") != expected:
        return replace(upload, error=f"answered with audio {audio}")
    return upload


def _problem(response: httpx.Response) -> str:
    """The status and the problem's code (RFC 9457 body), for a line of the report."""
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    return f"{response.status_code} {code or response.text[:200]}"


# ----------------------------------------------------------------------------- run


def _listing(env: Mapping[str, str], seconds: float) -> tuple[str, list[str]]:
    """The access token, and the lines reporting the listing."""
    with server(env) as port:
        token = httpx.post(
            f"http://{HOST}:{port}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        page = httpx.get(f"http://{HOST}:{port}/api/tracks?limit=100", headers=auth)
        count = len(page.json()["items"])
        if count != TRACKS:
            raise SystemExit(f"tracks bench: the listing answered {page.status_code}, {count}")
        measure(port, "/api/tracks?limit=100", seconds=1.0, headers=auth)  # warm-up
        bare, bare_latencies = measure(port, "/bench/constant", seconds=seconds)
        listed, latencies = measure(port, "/api/tracks?limit=100", seconds=seconds, headers=auth)
        # The ratio from the two taking turns, each against its own neighbouring turn.
        rows = alternate(
            port,
            [Request("/bench/constant"), Request("/api/tracks?limit=100", headers=auth)],
            rounds=max(8, int(seconds * 8)),
        )
    ratio = median(paired_ratios(rows, 1, 0))
    verdict = _verdict(ratio >= RATIO_GOAL)
    label = f"GET /api/tracks?limit=100 ({TRACKS} tracks, {len(page.content) / 1024:.0f} KiB)"
    report.record(
        bench="tracks",
        measure=f"{label} against a bare route",
        value=median(row[1] for row in rows),
        unit="req/s",
        baseline=median(row[0] for row in rows),
        ratio=ratio,
        goal=report.at_least(RATIO_GOAL, of="ratio"),
        note=f"median of {len(rows)} alternating rounds",
    )
    return token, [
        _rate_line(label, listed, latencies),
        _rate_line("GET /bench/constant (a bare route)", bare, bare_latencies),
        f"  listing / bare, median of {len(rows)} alternating rounds = {ratio:6.1%} "
        f"(goal >= {RATIO_GOAL:.0%}: {verdict})",
    ]


def _rate_line(label: str, rate: float, latencies: list[float]) -> str:
    ms = 1000
    return (
        f"  {label:46} {rate:7.0f} req/s, p50 {percentile(latencies, 0.5) * ms:6.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * ms:6.1f} ms"
    )


def _record(label: str, size: int, upload: Upload, baseline: float, goal: float | None) -> None:
    measure = f"PUT audio, {_mib(size)}, {label}, against cp + sha256sum"
    if upload.error is not None:
        report.record(
            bench="tracks",
            measure=measure,
            value=float("nan"),
            unit="MiB/s",
            baseline=baseline,
            goal=report.stated("the upload succeeds"),
            met=False,
            note=f"failed: {upload.error}",
        )
        return
    report.record(
        bench="tracks",
        measure=measure,
        value=size / MIB / upload.seconds,
        unit="MiB/s",
        baseline=baseline,
        goal=None if goal is None else report.at_least(goal, of="ratio"),
        note=f"{upload.tail:.2f} s of {upload.seconds:.2f} s after the last byte",
    )
    report.record(
        bench="tracks",
        measure=f"PUT audio, {_mib(size)}, {label}: server peak RSS growth",
        value=upload.growth / MIB,
        unit="MiB",
        goal=report.below(RSS_GOAL / MIB),
        note="" if upload.reset else "peak not reset: includes the warm-up",
    )


def _report(label: str, size: int, upload: Upload, baseline: float, goal: float | None) -> str:
    _record(label, size, upload, baseline, goal)
    if upload.error is not None:
        after = f" after {upload.seconds:.1f} s" if upload.seconds else ""
        return f"  {label:10} {_mib(size):>8}: failed{after}: {upload.error} (goal missed)"
    rate = size / MIB / upload.seconds
    ratio = rate / baseline
    line = f"  {label:10} {_mib(size):>8}: {rate:7.0f} MiB/s = {ratio:6.1%} of cp + sha256sum"
    if goal is not None:
        line += f" (goal >= {goal:.0%}: {_verdict(ratio >= goal)})"
    rss = _verdict(upload.growth < RSS_GOAL)
    line += (
        f"\n{'':23}{upload.seconds:.2f} s, {upload.tail:.2f} s of it after the last byte; "
        f"peak RSS +{upload.growth / MIB:.1f} MiB (goal < 64 MiB: {rss})"
    )
    return line if upload.reset else line + " [peak not reset: includes the warm-up]"


def run(*, quick: bool = False) -> None:
    seconds = 2.0 if quick else 8.0
    sizes = QUICK_SIZES if quick else FULL_SIZES
    prefix = f"backline-bench-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as temporary:
        root = Path(temporary)
        try:
            with postgres_database() as url:
                asyncio.run(_seed(url))
                env = {
                    "BACKLINE_ENV": "test",
                    "BACKLINE_DATABASE_URL": url,
                    "BACKLINE_REDIS_URL": REDIS_URL,
                    "BACKLINE_REDIS_PREFIX": prefix,
                    "BACKLINE_SECRET_KEY": uuid.uuid4().hex * 2,  # one key: one token for all
                    "BACKLINE_ACCESS_TOKEN_MINUTES": "60",
                    "BACKLINE_RATE_LIMITS": json.dumps(
                        {"global": HUGE, "login": HUGE, "login_account": HUGE, "upload": HUGE}
                    ),
                    "BACKLINE_LOG_LEVEL": "WARNING",
                    "BACKLINE_VAR_DIR": str(root / "var"),
                    "BACKLINE_STORAGE_DIR": str(root / "storage"),
                    "BACKLINE_MAX_AUDIO_BYTES": str(max(sizes) + MIB),
                }
                token, lines = _listing(env, seconds)
                lines += _uploads(env, token, root, sizes)
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            try:
                for key in client.scan_iter(match=f"{prefix}:*"):
                    client.delete(key)
            except redis.RedisError:
                pass  # the servers could not have written there either
            finally:
                client.close()
    print("tracks (PostgreSQL, Redis)")
    for line in lines:
        print(line)


def _uploads(env: Mapping[str, str], token: str, root: Path, sizes: tuple[int, ...]) -> list[str]:
    block = os.urandom(CHUNK)
    warm = root / "warm-up.wav"
    warm_digest = _wav(warm, WARM_UP, block)
    local = {**env, "BACKLINE_STORAGE_BACKEND": "local"}
    s3 = {
        **env,
        **AWS,
        "BACKLINE_STORAGE_BACKEND": "s3",
        "BACKLINE_S3_BUCKET": BUCKET,
        "BACKLINE_S3_REGION": REGION,
    }
    lines = [
        "  PUT /api/tracks/{id}/audio: a WAV streamed from disk with its Content-Digest,",
        f"  a fresh server per upload, warmed by a {_mib(WARM_UP)} upload",
    ]
    for size in sizes:
        path = root / f"bench-{size}.wav"
        digest = _wav(path, size, block)
        try:
            baseline = size / MIB / _copy_and_hash(path, root / "copy.wav")
            lines.append(f"  {'baseline':10} {_mib(size):>8}: {baseline:7.0f} MiB/s cp + sha256sum")
            upload = _upload(local, token, path, digest, (warm, warm_digest))
            lines.append(_report("local", size, upload, baseline, LOCAL_GOAL))
            with _moto() as endpoint:
                upload = _upload(
                    {**s3, "BACKLINE_S3_ENDPOINT_URL": endpoint},
                    token,
                    path,
                    digest,
                    (warm, warm_digest),
                )
            lines.append(_report("s3 (moto)", size, upload, baseline, None))
        finally:
            path.unlink(missing_ok=True)
    measured = " and ".join(_mib(size) for size in sizes)
    lines.append(f"  measured: local storage and S3 (moto on loopback, in memory), {measured} each")
    return lines
