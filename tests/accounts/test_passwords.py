"""The password policy and hashing: length, common and personal passwords, no truncation, and
the breached-password check against a local stand-in for Have I Been Pwned."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from argon2 import extract_parameters
from argon2.low_level import Type

from backline.accounts import passwords
from backline.accounts.passwords import (
    MAX_LENGTH,
    WeakPassword,
    breach_count,
    check_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from backline.config import Settings
from backline.httpclient import create_http_client
from backline.logging import configure_logging
from tests.conftest import LogCapture, free_port

STRONG = "tangerine umbrella 42 nightfall"
EMAIL = "jonathan.smith@example.com"
NAME = "Jonathan Smith"

MakeSettings = Callable[..., Settings]


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


async def refusal(password: str, settings: Settings, **kwargs: Any) -> str:
    with pytest.raises(WeakPassword) as refused:
        await check_password(password, settings=settings, **kwargs)
    assert refused.value.status == 422
    assert refused.value.code == "weak_password"
    assert password not in refused.value.detail
    return refused.value.detail


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


# ----------------------------------------------------------------------------- hashing


async def test_hashes_run_on_threads_of_their_own_one_per_core() -> None:
    stored = await hash_password("a long enough passphrase")
    cores = passwords.cores()
    results = await asyncio.gather(
        *(verify_password(stored, "a long enough passphrase") for _ in range(3 * cores))
    )
    assert all(results)
    hashing = [thread for thread in threading.enumerate() if thread.name.startswith("argon2")]
    assert 1 <= len(hashing) <= cores


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own niceness is Linux's")
async def test_hashing_threads_run_below_the_event_loop() -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop = niceness()
    if loop >= 19:
        pytest.skip("this process runs at the lowest priority already")
    hashing = await passwords._off_loop(niceness)
    assert hashing == min(19, loop + passwords.HASHING_NICENESS)
    assert niceness() == loop  # the loop's own is untouched


async def test_a_check_given_up_while_waiting_for_a_thread_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A request cancelled (its deadline passed, its client went) before a hashing thread took
    # its check leaves nothing behind to burn a core.
    stored = await hash_password("a long enough passphrase")
    ran: list[str] = []

    class Counted:
        def verify(self, stored_hash: str, password: str) -> bool:
            ran.append(password)
            return real.verify(stored_hash, password)

    real = passwords.hasher
    monkeypatch.setattr(passwords, "hasher", Counted())
    cores = passwords.cores()
    busy = [
        asyncio.create_task(verify_password(stored, "a long enough passphrase"))
        for _ in range(cores)
    ]
    waiting = [asyncio.create_task(verify_password(stored, "given up")) for _ in range(cores)]
    await asyncio.sleep(0)  # every check handed to the pool
    for task in waiting:
        task.cancel()
    assert all(await asyncio.gather(*busy))
    await asyncio.sleep(0.2)
    assert "given up" not in ran


async def test_past_the_queue_bound_a_hash_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "MAX_WAITING_PER_CORE", 2)
    stored = await hash_password("a long enough passphrase")
    bound = 2 * passwords.cores()
    checks = [
        asyncio.create_task(verify_password(stored, "a long enough passphrase"))
        for _ in range(bound + 3)
    ]
    outcomes = await asyncio.gather(*checks, return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, passwords.HashingBusy)]
    assert outcomes[:bound] == [True] * bound
    assert len(refused) == 3
    assert refused[0].status == 503
    assert refused[0].headers == {"Retry-After": "1"}
    # Once the queue drains, hashes are taken again.
    assert await verify_password(stored, "a long enough passphrase")


# ----------------------------------------------------------------------------- length


@pytest.mark.parametrize("password", ["Xk9#mQ2", "é" * 7, "x" * (MAX_LENGTH + 1)])
async def test_too_short_or_too_long_is_refused(password: str, settings: Settings) -> None:
    detail = await refusal(password, settings)
    assert detail == "A password must have 8 to 128 characters."


async def test_length_counts_characters_not_bytes(settings: Settings) -> None:
    eight = "žluťoučký kůň"[:8]  # 8 characters, 13 bytes
    assert len(eight) == 8
    assert len(eight.encode()) > 8
    await check_password(eight, settings=settings)
    long = ("Příliš žluťoučký kůň úpěl ďábelské ódy! " * 4)[:MAX_LENGTH]
    assert len(long.encode()) > MAX_LENGTH
    await check_password(long, settings=settings)


@pytest.mark.parametrize("length", [64, MAX_LENGTH])
async def test_long_passwords_are_accepted_and_never_truncated(
    length: int, settings: Settings
) -> None:
    password = (STRONG + " / quiet orbit 7 lantern / ") * 5
    password = password[:length]
    assert len(password) == length
    await check_password(password, email=EMAIL, display_name=NAME, settings=settings)

    stored = await hash_password(password)
    assert await verify_password(stored, password)
    differs_last = password[:-1] + ("#" if password[-1] != "#" else "$")
    assert not await verify_password(stored, differs_last)
    assert not await verify_password(stored, password[:-1])
    if length > 72:  # bcrypt's limit: Argon2 has none
        assert not await verify_password(stored, password[:72])
    assert password not in stored


async def test_the_stored_hash_is_argon2id_at_owasp_minimum() -> None:
    stored = await hash_password(STRONG)
    params = extract_parameters(stored)
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism == 1
    assert not needs_rehash(stored)
    assert not await verify_password("not a hash", STRONG)


async def test_a_crafted_long_password_is_checked_quickly(settings: Settings) -> None:
    """zxcvbn's l33t matching explodes on such input (seconds for 128 characters)."""
    crafted = ("!$%(+0123456789<@[{|" * 7)[:MAX_LENGTH]
    started = time.perf_counter()
    await check_password(crafted, settings=settings)  # strong enough, and answered quickly
    assert time.perf_counter() - started < 3


async def test_unpaired_surrogates_are_refused_not_crashed(settings: Settings) -> None:
    detail = await refusal("long enough \ud800 text", settings)
    assert "Unicode" in detail


# ----------------------------------------------------------------------------- guessable


@pytest.mark.parametrize(
    "password",
    ["password1", "qwertyuiop", "iloveyou", "12345678", "P@ssw0rd!", "Password2024", "letmein123"],
)
async def test_common_passwords_are_refused(password: str, settings: Settings) -> None:
    detail = await refusal(password, settings)
    assert "too common" in detail


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "abcdefghijk", "1q2w3e4r5t6y"])
async def test_patterns_are_refused(password: str, settings: Settings) -> None:
    detail = await refusal(password, settings)
    assert "too easy to guess" in detail or "too common" in detail


@pytest.mark.parametrize(
    ("password", "email", "display_name"),
    [
        ("jonathansmith1", EMAIL, None),
        ("Jonathan.Smith", EMAIL, None),
        ("jonathan2024", EMAIL, None),
        ("j0n4th4n.sm1th", EMAIL, None),
        ("example.com1", EMAIL, None),
        ("JonathanSmith!", None, NAME),
        ("smithjonathan", None, NAME),
        ("myjonathan!", None, NAME),
        ("Ruby Okonkwo-Adeyemi", None, "Ruby Okonkwo-Adeyemi"),
        ("rubyokonkwo88", "rubyokonkwo@fastmail.org", "Ruby O."),
        ("fastmail-rulez", "rubyokonkwo@fastmail.org", None),
    ],
)
async def test_passwords_close_to_the_email_or_name_are_refused(
    password: str, email: str | None, display_name: str | None, settings: Settings
) -> None:
    detail = await refusal(password, settings, email=email, display_name=display_name)
    assert detail.startswith("This password is too close to your email address or name.")


async def test_the_same_password_is_fine_for_someone_else(settings: Settings) -> None:
    await refusal("rubyokonkwo88", settings, email="rubyokonkwo@fastmail.org")
    await check_password("rubyokonkwo88", email="pat.lee@example.net", settings=settings)


@pytest.mark.parametrize(
    "password",
    [
        STRONG,
        "correct horse battery staple",
        "zebra-lamp-orbit-42",
        "kX9#mQ2vL7",
        "Jonathan, the walrus of quiet Tuesdays",  # the name, but little of it
    ],
)
async def test_strong_passwords_are_accepted(password: str, settings: Settings) -> None:
    await check_password(password, email=EMAIL, display_name=NAME, settings=settings)


# ----------------------------------------------------------------------------- breached


class RangeServer:
    """A loopback stand-in for the Pwned Passwords range API.

    It records every request as it arrived (request line and headers) and answers with
    `status` and `body`, or, when `hang` is set, holds the connection without answering.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.body = ""
        self.hang = False
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.received.append(f"{self.requestline}\r\n{self.headers}")
                server.paths.append(self.path)
                server.headers.append(dict(self.headers.items()))
                if server.hang:
                    server.released.wait(10)
                    return
                body = server.body.encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[RangeServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.released.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


def range_body(*entries: tuple[str, int], padding: int = 40) -> str:
    """A range answer: the given suffixes among decoys, padded like the real service."""
    lines = [f"{sha1(str(i)).upper()[5:]}:{i + 3}" for i in range(8)]
    lines += [f"{suffix}:{count}" for suffix, count in entries]
    lines += [
        f"{hashlib.sha256(str(i).encode()).hexdigest().upper()[:35]}:0" for i in range(padding)
    ]
    return "\r\n".join(sorted(lines))


@pytest.fixture
def upstream() -> Iterator[RangeServer]:
    with RangeServer().running() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client(30.0) as client:
        yield client


@pytest.fixture
def hibp(make_settings: MakeSettings, upstream: RangeServer, logs: LogCapture) -> Settings:
    settings = make_settings(breached_password_check=True, hibp_base_url=upstream.url)
    configure_logging(settings, stream=logs.stream)
    return settings


def assert_nothing_leaked(password: str, upstream: RangeServer, logs: LogCapture) -> None:
    digest = sha1(password)
    for text in [*upstream.received, logs.text]:
        for secret in (password, digest, digest[5:], digest.lower(), digest[5:].lower()):
            assert secret not in text


async def test_only_the_prefix_leaves_and_a_breached_password_is_refused(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient, logs: LogCapture
) -> None:
    digest = sha1(STRONG)
    upstream.body = range_body((digest[5:], 52))
    detail = await refusal(STRONG, hibp, email=EMAIL, display_name=NAME, http=http)
    assert "data breach" in detail
    assert upstream.paths == [f"/range/{digest[:5]}"]
    [headers] = upstream.headers
    assert headers["Add-Padding"] == "true"
    assert headers["User-Agent"].startswith("backline/")  # the shared client was used
    assert_nothing_leaked(STRONG, upstream, logs)


async def test_the_suffix_is_matched_whatever_its_case(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient
) -> None:
    upstream.body = range_body((sha1(STRONG)[5:].lower(), 3))
    assert await breach_count(STRONG, base_url=hibp.hibp_base_url, http=http) == 3


async def test_a_padding_entry_is_not_a_breach(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient, logs: LogCapture
) -> None:
    upstream.body = range_body((sha1(STRONG)[5:], 0))
    await check_password(STRONG, settings=hibp, http=http)
    assert len(upstream.paths) == 1
    assert not logs.named("breached_password_check_unavailable")


async def test_an_unlisted_password_is_accepted(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient
) -> None:
    upstream.body = range_body()
    await check_password(STRONG, settings=hibp, http=http)
    assert await breach_count(STRONG, base_url=upstream.url, http=http) == 0


async def test_without_a_shared_client_one_of_its_own_is_used(
    hibp: Settings, upstream: RangeServer
) -> None:
    upstream.body = range_body((sha1(STRONG)[5:], 1))
    await refusal(STRONG, hibp)
    assert upstream.paths == [f"/range/{sha1(STRONG)[:5]}"]


async def test_the_check_is_off_by_default(
    settings: Settings, upstream: RangeServer, http: httpx.AsyncClient
) -> None:
    upstream.body = range_body((sha1(STRONG)[5:], 99))
    await check_password(STRONG, settings=settings, http=http)
    assert upstream.paths == []


async def test_a_weak_password_is_refused_before_asking(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient
) -> None:
    detail = await refusal("password1", hibp, http=http)
    assert "too common" in detail
    assert upstream.paths == []


async def test_a_server_error_fails_open(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient, logs: LogCapture
) -> None:
    upstream.status, upstream.body = 500, "oops"
    await check_password(STRONG, settings=hibp, http=http)
    [warning] = logs.named("breached_password_check_unavailable")
    assert warning["level"] == "warning"
    assert warning["status"] == 500
    assert_nothing_leaked(STRONG, upstream, logs)


async def test_an_unreadable_count_fails_open(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient, logs: LogCapture
) -> None:
    upstream.body = range_body() + f"\r\n{sha1(STRONG)[5:]}:many"
    await check_password(STRONG, settings=hibp, http=http)
    assert logs.named("breached_password_check_unavailable")


async def test_an_unreachable_service_fails_open(
    make_settings: MakeSettings, http: httpx.AsyncClient, logs: LogCapture
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(breached_password_check=True, hibp_base_url=closed)
    configure_logging(settings, stream=logs.stream)
    await check_password(STRONG, settings=settings, http=http)
    [warning] = logs.named("breached_password_check_unavailable")
    assert warning["error"] == "ConnectError"
    assert STRONG not in logs.text
    assert sha1(STRONG) not in logs.text


async def test_a_hanging_service_fails_open_within_the_time_limit(
    hibp: Settings, upstream: RangeServer, http: httpx.AsyncClient, logs: LogCapture
) -> None:
    upstream.hang = True  # the server would wait 10 s
    started = time.perf_counter()
    await check_password(STRONG, settings=hibp, http=http, breach_timeout=0.5)
    elapsed = time.perf_counter() - started
    assert 0.4 < elapsed < 3
    assert len(upstream.paths) == 1
    [warning] = logs.named("breached_password_check_unavailable")
    assert warning["error"] in ("ReadTimeout", "TimeoutError")
    assert_nothing_leaked(STRONG, upstream, logs)
