"""Hot paths: what Backline's most frequent requests cost beside a bare FastAPI route.

Four servers run side by side, each one worker on loopback: the bare FastAPI app of
`bench.bare` on plain uvicorn (the baseline); `backline serve` as an operator runs it, at the
default log level (INFO: JSON access log on, written to a file); the same at WARNING (no access
log), to price the log line alone; and `bench.floor`, a sign-in with nothing but its own work.
PostgreSQL and Redis on loopback, rate limits on but set too high to refuse, an artist with
100 tracks.

Every measure is a ratio of two rates taken in the same run, the two taking turns of a quarter
of a second many times over (`bench.load.alternate`), each turn's rate against its neighbour's:
this shared machine's speed drifts too much for rates taken seconds apart. Only 2xx answers
count: anything else is an error and is reported.

1. the access log: 1 - (GET /healthz at INFO) / (the same at WARNING) (goal < 5%);
2. `GET /healthz` through every middleware / the bare route (goal >= 75%);
3. `GET /api/me` (bearer token, revocation check, the user's row) / bare (goal >= 30%);
   its p99 at 32 connections (goal < 20 ms), and its p99 while 32 connections flood the login
   route (goal < 50 ms), measured as an open load: requests due at fixed times, each latency
   counted from when its request was due, so that queueing shows;
4. `GET /api/tracks?limit=100` / bare (goal >= 10%);
5. logins per second / `bench.floor`'s, in turns of a second (goal >= 95%).

`BENCH_SERVERS=uvicorn,granian` serves Backline (at INFO) on each server named
(`serve --server`) side by side in the same run: the goals are judged on the first; for each
further one, `/healthz`, `/api/me` and the track list take their turns in the same rounds, and
are reported against the bare route (the baseline stays the bare app on uvicorn) and, round by
round, against the first server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
import redis

from backline.accounts import service as accounts
from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from bench import report
from bench.load import HOST, Request, alternate, measure, paired_ratios, percentile, start
from bench.support import CpuMeter, free_port, postgres_database
from bench.tracks import EMAIL, PASSWORD, TRACKS, _seed

REDIS_URL = os.environ.get("BACKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HUGE = "10000000/minute"
LIMITED = ("global", "login", "login_account")
TRACKS_PATH = f"/api/tracks?limit={TRACKS}"
# Logins flood as an account of their own: each opens a session, and past the session cap the
# oldest are ended, which would revoke the token `/api/me` is measured with.
LOGIN_EMAIL = "signing-in@example.com"
KNOWN_SERVERS = ("uvicorn", "granian")


def compared_servers() -> list[str]:
    """The servers `BENCH_SERVERS` names (default uvicorn alone), the judged one first."""
    names = [n.strip() for n in os.environ.get("BENCH_SERVERS", "uvicorn").split(",")]
    names = [n for n in dict.fromkeys(names) if n]
    unknown = [n for n in names if n not in KNOWN_SERVERS]
    if unknown or not names:
        raise SystemExit(f"bench: BENCH_SERVERS names one or more of {', '.join(KNOWN_SERVERS)}")
    return names


def backline_command(port: int, server: str = "uvicorn") -> list[str]:
    """`backline serve` as an operator runs it, on a loopback port."""
    return [
        *(sys.executable, "-m", "backline", "serve", "--host", HOST, "--port", str(port)),
        *("--server", server),
    ]


def serving_pid(pid: int) -> int:
    """The process that answers: `pid` itself, or the worker it spawned (Granian serves from a
    worker process even with one)."""
    try:
        children = (Path(f"/proc/{pid}/task/{pid}/children").read_text()).split()
    except OSError:
        return pid
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in command:
            return int(child)
    return pid


def uvicorn_command(factory: str, port: int) -> list[str]:
    """Plain uvicorn serving `factory`, no access log."""
    return [
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
    ]


@contextmanager
def servers(
    commands: Mapping[str, tuple[list[str], Mapping[str, str]]], logs: Path
) -> Iterator[dict[str, tuple[int, int]]]:
    """Start every server at once (each on the port its command names, its stderr to
    `logs/<name>.log`), wait until each answers `/healthz`: (port, pid) by name."""
    processes: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        for name, (command, env) in commands.items():
            with (logs / f"{name}.log").open("wb") as sink:
                process = subprocess.Popen(
                    command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=sink
                )
            processes[name] = (int(command[command.index("--port") + 1]), process)
        for port, process in processes.values():
            _wait_for(port, process)
        yield {name: (port, process.pid) for name, (port, process) in processes.items()}
    finally:
        for _, process in processes.values():
            process.terminate()
        for _, process in processes.values():
            process.wait(timeout=15)


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # a loaded machine imports slowly
    while True:
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).is_success:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("bench: a server did not start")
        time.sleep(0.1)


async def _login_account(url: str) -> None:
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await accounts.create(
                session, email=LOGIN_EMAIL, password=PASSWORD, display_name="Bench", verified=True
            )
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Goal:
    label: str
    value: float
    baseline: str
    goal: str
    met: bool
    shown: str


def _ratio(label: str, value: float, baseline: str, minimum: float) -> Goal:
    return Goal(label, value, baseline, f">= {minimum:.0%}", value >= minimum, f"{value:6.1%}")


def _ms(label: str, seconds: float, baseline: str, maximum: float) -> Goal:
    shown = f"{seconds * 1000:6.1f} ms"
    return Goal(label, seconds, baseline, f"< {maximum * 1000:.0f} ms", seconds < maximum, shown)


def _token(port: int) -> str:
    answer = httpx.post(
        f"http://{HOST}:{port}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}
    )
    if answer.status_code != 200:
        raise SystemExit(f"bench: login answered {answer.status_code}")
    token: str = answer.json()["access_token"]
    return token


def _check(port: int, path: str, headers: Mapping[str, str]) -> int:
    """The size of a 2xx answer to `path` (else the bench stops: it would measure refusals)."""
    answer = httpx.get(f"http://{HOST}:{port}{path}", headers=dict(headers))
    if not answer.is_success:
        raise SystemExit(f"bench: {path} answered {answer.status_code}")
    return len(answer.content)


def run(*, quick: bool = False) -> None:
    rounds = 6 if quick else 40
    login_rounds = 2 if quick else 8
    seconds = 2.0 if quick else 6.0
    prefix = f"backline-bench-{uuid.uuid4().hex[:8]}"
    judged, *others = compared_servers()
    errors: Counter[tuple[int, int]] = Counter()
    flood_errors: Counter[int] = Counter()
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as temporary, ExitStack() as stack:
        root = Path(temporary)
        url = stack.enter_context(postgres_database())
        asyncio.run(_seed(url))
        asyncio.run(_login_account(url))
        env = {
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": url,
            "BACKLINE_REDIS_URL": REDIS_URL,
            "BACKLINE_REDIS_PREFIX": prefix,
            "BACKLINE_SECRET_KEY": uuid.uuid4().hex * 2,  # one key: one token for all
            "BACKLINE_ACCESS_TOKEN_MINUTES": "60",
            "BACKLINE_RATE_LIMITS": json.dumps(dict.fromkeys(LIMITED, HUGE)),
            "BACKLINE_LOG_FORMAT": "json",
            "BACKLINE_VAR_DIR": str(root / "var"),
            "BACKLINE_STORAGE_DIR": str(root / "storage"),
        }
        env.pop("BACKLINE_LOG_LEVEL", None)
        quiet_env = {**env, "BACKLINE_LOG_LEVEL": "WARNING"}
        try:
            commands = {
                "bare": (uvicorn_command("bench.bare:create_app", free_port()), {}),
                "info": (backline_command(free_port(), judged), env),
                "warning": (backline_command(free_port(), judged), quiet_env),
                "floor": (uvicorn_command("bench.floor:create_app", free_port()), quiet_env),
                **{other: (backline_command(free_port(), other), env) for other in others},
            }
            running = stack.enter_context(servers(commands, root))
            bare, port, quiet, floor_port = (running[name][0] for name in list(commands)[:4])
            auth = {"Authorization": f"Bearer {_token(port)}"}
            size = _check(port, TRACKS_PATH, auth)
            other_ports = [running[other][0] for other in others]
            for other_port in other_ports:
                _check(other_port, TRACKS_PATH, auth)
            for target in (port, *other_ports):
                for path in ("/api/me", TRACKS_PATH):
                    measure(target, path, seconds=0.5, headers=auth)  # warm-up
            measure(quiet, "/healthz", seconds=0.5)
            measure(bare, "/healthz", seconds=0.5)
            columns = [
                Request("/healthz", port=bare),
                Request("/healthz", port=port),
                Request("/healthz", port=quiet),
                Request("/api/me", port=port, headers=auth),
                Request(TRACKS_PATH, port=port, headers=auth),
            ]
            for other_port in other_ports:  # columns 5 + 3k, 6 + 3k, 7 + 3k
                columns += [
                    Request("/healthz", port=other_port),
                    Request("/api/me", port=other_port, headers=auth),
                    Request(TRACKS_PATH, port=other_port, headers=auth),
                ]
            rows = alternate(
                port, columns, rounds=rounds, connections=32, drain=True, errors=errors
            )
            pids = {running[name][0]: serving_pid(running[name][1]) for name in commands}
            cpu = [_cpu_per_request(pids[c.port or port], c, seconds) for c in columns]
            _, me_latencies = measure(
                port, "/api/me", seconds=seconds, connections=32, headers=auth
            )
            during = _during_login_flood(port, auth, seconds, flood_errors)
            login_rows = _logins(port, floor_port, login_rounds, errors)
        finally:
            _forget(prefix)
        log_lines = _access_lines(root / "info.log")
        other_log_lines = [_access_lines(root / f"{other}.log") for other in others]

    rates = [median(row[column] for row in rows) for column in range(len(columns))]
    healthz, quiet_healthz = paired_ratios(rows, 1, 0), paired_ratios(rows, 1, 2)
    goals = [
        Goal(
            "access log: cost of one line at INFO",
            1 - median(quiet_healthz),
            "/healthz at WARNING",
            "< 5%",
            1 - median(quiet_healthz) < 0.05,
            f"{1 - median(quiet_healthz):6.1%}",
        ),
        _ratio("GET /healthz, every middleware", median(healthz), "bare /healthz", 0.75),
        _ratio("GET /api/me", median(paired_ratios(rows, 3, 0)), "bare /healthz", 0.30),
        _ms("GET /api/me p99, 32 connections", percentile(me_latencies, 0.99), "", 0.020),
        _ms("GET /api/me p99, login flood", percentile(during, 0.99), "", 0.050),
        _ratio(f"GET {TRACKS_PATH}", median(paired_ratios(rows, 4, 0)), "bare /healthz", 0.10),
        _ratio(
            "POST /api/auth/login", median(paired_ratios(login_rows, 0, 1)), "bench.floor", 0.95
        ),
    ]
    _print(columns[:5], rates[:5], goals, rounds, size, log_lines, errors, flood_errors, judged)
    _print_cpu(columns, cpu, [judged] * 5 + [o for o in others for _ in range(3)])
    for k, other in enumerate(others):
        goals += _compare(rows, judged, other, 5 + 3 * k, other_log_lines[k])
    for goal in goals:
        in_ms = goal.goal.endswith("ms")
        report.record(
            bench="hotpaths",
            measure=goal.label,
            value=goal.value * 1000 if in_ms else goal.value,
            unit="ms" if in_ms else "ratio",
            goal=report.stated(goal.goal),
            met=goal.met,
            note=f"against {goal.baseline}" if goal.baseline else "",
        )


def _access_lines(path: Path) -> int:
    """How many access-log lines (JSON, event `request`) the server at INFO wrote."""
    count = 0
    for text in path.read_text().splitlines():
        try:
            count += json.loads(text).get("event") == "request"
        except ValueError:
            continue
    return count


def _cpu_per_request(pid: int, request: Request, seconds: float) -> tuple[float, float]:
    """CPU seconds the server's process spent per 2xx answer to `request` under a load of 32
    connections, and the rate: what a request costs its worker, whatever else the machine
    runs. The meter runs over the whole load, which sends nothing outside its window."""
    assert request.port is not None
    meter = CpuMeter(pid)
    meter.start()
    rate, _ = start(
        request.port, request.path, seconds=seconds, connections=32, headers=request.headers
    )()
    meter.stop()
    parts = meter.parts()
    return (parts["loop"] + parts["threads"]) / max(rate * seconds, 1.0), rate


def _compare(
    rows: list[list[float]], judged: str, other: str, first: int, log_lines: int
) -> list[Goal]:
    """Backline on `other` (columns `first`..`first + 2`) against the bare route, with the
    same goals, and round by round against Backline on `judged` (columns 1, 3 and 4)."""
    pairs = [("GET /healthz, every middleware", 1, 0.75), ("GET /api/me", 3, 0.30)]
    pairs.append((f"GET {TRACKS_PATH}", 4, 0.10))
    print(f"  Backline on {other} beside Backline on {judged} (same rounds; {log_lines} lines)")
    print(f"  {'measure':40} {'/ bare':>9}  {other + ' / ' + judged:>18}")
    goals = []
    for offset, (label, mine, minimum) in enumerate(pairs):
        against_bare = median(paired_ratios(rows, first + offset, 0))
        against_judged = paired_ratios(rows, first + offset, mine)
        print(f"  {label:40} {against_bare:9.1%}  {median(against_judged):18.1%}")
        goals.append(_ratio(f"{label} ({other})", against_bare, "bare /healthz", minimum))
        report.record(
            bench="hotpaths",
            measure=f"{label}: {other} / {judged}",
            value=median(against_judged),
            unit="ratio",
            note="Backline on each server, same rounds",
        )
    return goals


def _print_cpu(columns: list[Request], cpu: list[tuple[float, float]], names: list[str]) -> None:
    """The same comparisons by the server's CPU per request, which the machine's other work
    disturbs far less than it does rates: a ratio of rates is the inverse of this ratio when
    the worker is what limits them."""
    bare = cpu[0][0]
    print("  CPU per request of the serving process (loop and its threads), 32 connections:")
    for index, (column, (spent, rate)) in enumerate(zip(columns, cpu, strict=True)):
        share = f"{bare / spent:6.1%}" if spent else "   n/a"
        name = "bare" if index == 0 else names[index]
        print(
            f"    {name:8} {column.path:28} {spent * 1e6:8.0f} us  bare/this {share} "
            f"({rate:.0f} req/s)"
        )
    (info, _), (warning, _) = cpu[1], cpu[2]
    if info:
        print(f"    the access-log line: {(info - warning) / info:6.1%} of /healthz's CPU at INFO")


def _during_login_flood(
    port: int, auth: Mapping[str, str], seconds: float, errors: Counter[int]
) -> list[float]:
    """Latencies of `GET /api/me` sent at 100 a second (an open load) while 32 connections
    send logins as fast as they are answered."""
    body = json.dumps({"email": LOGIN_EMAIL, "password": PASSWORD}).encode()
    flood = start(
        port,
        "/api/auth/login",
        method="POST",
        body=body,
        seconds=seconds + 1.0,
        connections=32,
        errors=errors,
    )
    opens = time.monotonic() + 0.5  # the flood has filled the server's queue
    _, during = measure(
        port, "/api/me", seconds=seconds, connections=4, rate=100, opens=opens, headers=auth
    )
    flood()
    return during


def _logins(
    port: int, floor: int, rounds: int, errors: Counter[tuple[int, int]]
) -> list[list[float]]:
    body = json.dumps({"email": LOGIN_EMAIL, "password": PASSWORD}).encode()
    columns = [
        Request("/api/auth/login", method="POST", body=body, port=port),
        Request("/api/auth/login", method="POST", body=body, port=floor),
    ]
    measure(floor, "/api/auth/login", method="POST", body=body, seconds=0.5, connections=8)
    return alternate(port, columns, rounds=rounds, seconds=1.0, connections=8, errors=errors)


def _forget(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    except redis.RedisError:
        pass  # the servers could not have written there either
    finally:
        client.close()


def _print(
    columns: list[Request],
    rates: list[float],
    goals: list[Goal],
    rounds: int,
    size: int,
    log_lines: int,
    errors: Counter[tuple[int, int]],
    flood_errors: Counter[int],
    server: str,
) -> None:
    names = ["bare FastAPI", "backline INFO", "backline WARNING", "backline INFO", "backline INFO"]
    print(
        f"hot paths (one worker each, Backline on {server}, PostgreSQL, Redis, JSON logs; "
        "32 connections)"
    )
    for name, column, rate in zip(names, columns, rates, strict=True):
        print(f"  {name:17} {column.method} {column.path:24} {rate:7.0f} req/s (median)")
    print(
        f"  {TRACKS} tracks are {size / 1024:.1f} KiB; medians of {rounds} alternating rounds "
        f"of 0.25 s; {log_lines} access-log lines written at INFO"
    )
    print(f"  {'measure':40} {'value':>9}  {'baseline':20} {'goal':8} verdict")
    for goal in goals:
        verdict = "met" if goal.met else "MISSED"
        print(f"  {goal.label:40} {goal.shown:>9}  {goal.baseline:20} {goal.goal:8} {verdict}")
    if errors or flood_errors:
        print(f"  errors (not counted as throughput): {dict(errors)} {dict(flood_errors)}")
