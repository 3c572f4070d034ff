"""Passwords: hashing with Argon2id, and the policy a newly chosen password must meet.

Hashing uses argon2-cffi with OWASP's recommended minimum for Argon2id: 19 MiB of memory,
2 iterations, 1 lane. It runs on threads of its own, one per core (argon2-cffi releases the
GIL), at a lower priority than the event loop, so a burst of logins never stalls other
requests; past 32 hashes in hand per core, more are refused at once with 503 `busy` and
Retry-After rather than queued behind a flood.
`needs_rehash` tells when a stored hash used older parameters. Passwords are never truncated:
Argon2 has no 72-byte limit.

`check_password` is the policy for every password a person chooses (sign-up, reset, change);
it raises `WeakPassword` (422 `weak_password`) with a reason that never repeats the password:

* 8 to 128 characters, counted as characters, not bytes; no composition rules;
* not easily guessed, judged by zxcvbn and its bundled lists (common passwords, words, names)
  and patterns (repeats, sequences, keyboard rows, dates), off the event loop;
* not too close to the email address (local part, domain name) or the display name;
* optionally (`BACKLINE_BREACHED_PASSWORD_CHECK`), not known to Have I Been Pwned, asked through
  its k-anonymity range API: only the first 5 hex digits of the SHA-1 leave the server, and an
  unreachable or failing service lets the password through (fail open) with a warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backline.config import Settings
from backline.errors import ServiceUnavailable, Unprocessable
from backline.logging import get_logger

if TYPE_CHECKING:
    import httpx

MIN_LENGTH = 8
MAX_LENGTH = 128

# zxcvbn's l33t matching grows combinatorially with the number of distinct substitutable
# characters: a crafted 128-character password costs about 7 s of CPU (holding the GIL), 32
# characters at most about 0.5 s, an ordinary password a few ms. So only the first 32 are
# analysed. That never lets a weak password through (an attacker must guess the first 32
# characters too, so a strong prefix makes a strong password); it can only refuse a password
# whose first 32 characters alone are guessable.
ANALYSED_LENGTH = 32
# zxcvbn's score 2 starts at 10^6 guesses ("safe from unthrottled online guessing").
MIN_SCORE = 2
SHORT_INPUT = 3  # user inputs shorter than this match almost anything and are left out
HIBP_TIMEOUT = 3.0  # seconds for the whole breached-password call
HASHING_NICENESS = 10  # added to a hashing thread's niceness (see `_yield_to_the_loop`)

log = get_logger(__name__)
T = TypeVar("T")

hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# zxcvbn keeps the user inputs of the call in progress in a module-level dictionary, so two
# concurrent calls would see each other's; calls are serialized (it is CPU-bound under the
# GIL anyway, so nothing is lost).
_zxcvbn_lock = threading.Lock()

REASONS: Mapping[str, str] = {
    "personal": (
        "This password is too close to your email address or name. "
        "Choose one that has nothing to do with them."
    ),
    "common": (
        "This password is too common: it is, or is close to, one of the most used passwords. "
        "Try a few unrelated words instead."
    ),
    "words": (
        "This password is too easy to guess: it is mostly a common word or name. "
        "Add more words or make it longer."
    ),
    "pattern": (
        "This password is too easy to guess: it is a predictable pattern (repeated characters, "
        "a sequence, a keyboard row or a date). Try a few unrelated words instead."
    ),
    "breached": (
        "This password has appeared in a data breach (Have I Been Pwned), so attackers try it "
        "early. Choose a different one."
    ),
}
# When several kinds of weakness cover as many characters, the first named here is told.
_PRIORITY = ("personal", "common", "words", "pattern")


class WeakPassword(Unprocessable):
    code = "weak_password"


def check_length(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise WeakPassword(f"A password must have {MIN_LENGTH} to {MAX_LENGTH} characters.")


async def check_password(
    password: str,
    *,
    email: str | None = None,
    display_name: str | None = None,
    settings: Settings,
    http: httpx.AsyncClient | None = None,
    breach_timeout: float = HIBP_TIMEOUT,
) -> None:
    """Raise `WeakPassword` with a human reason unless `password` meets the policy.

    `http` is the app's shared client (it carries the request ID); without one, the optional
    breached-password check makes a client of its own.
    """
    check_length(password)
    try:
        password.encode()
    except UnicodeEncodeError:
        raise WeakPassword("A password must be valid Unicode text.") from None
    inputs = user_inputs(email=email, display_name=display_name)
    weakness = await anyio.to_thread.run_sync(partial(_weakness, password, inputs))
    if weakness is not None:
        raise WeakPassword(REASONS[weakness])
    if not settings.breached_password_check:
        return
    if http is None:
        from backline.httpclient import create_http_client  # the app passes its own client

        async with create_http_client(breach_timeout) as own:
            count = await breach_count(
                password, base_url=settings.hibp_base_url, http=own, time_limit=breach_timeout
            )
    else:
        count = await breach_count(
            password, base_url=settings.hibp_base_url, http=http, time_limit=breach_timeout
        )
    if count:
        raise WeakPassword(REASONS["breached"])


def user_inputs(*, email: str | None, display_name: str | None) -> list[str]:
    """What a password must not be close to: the address, its parts, the name and its words."""
    found: list[str] = []
    if email:
        local, at, domain = email.strip().lower().rpartition("@")
        if not at:
            local, domain = domain, ""
        found += [email.strip(), local, re.sub(r"[\W_]+", "", local), *re.split(r"[\W_]+", local)]
        labels = [label for label in domain.split(".") if label]
        found += [domain, *labels[:-1]]  # the domain name, without its top-level domain
    if display_name:
        words = display_name.split()
        found += [display_name.strip(), "".join(words), *words]
    unique = dict.fromkeys(text.lower() for text in found if len(text) >= SHORT_INPUT)
    return list(unique)


def _weakness(password: str, inputs: Sequence[str]) -> str | None:
    """The kind of weakness zxcvbn finds in the password's first characters, if any.

    The rule: refuse when zxcvbn estimates fewer than 10^6 guesses (score below 2), which covers
    a common password, one with a small change (a digit or a year added, l33t spelling), a
    common word or name, and patterns; or when matches of the email address or the name cover
    at least half of it, however many guesses it would take. The reason told is the kind of
    match that covers the most characters.
    """
    # Imported at the first check, not at start-up: zxcvbn's lists take some 10 MB that a
    # process which never sets a password (the command line, the worker) would carry for nothing.
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]

    analysed = password[:ANALYSED_LENGTH]
    with _zxcvbn_lock:
        result: dict[str, Any] = zxcvbn(
            analysed, user_inputs=list(inputs), max_length=ANALYSED_LENGTH
        )
    covered = _coverage(result["sequence"])
    if 2 * covered["personal"] >= len(analysed):
        return "personal"
    if result["score"] >= MIN_SCORE:
        return None
    return max(_PRIORITY, key=lambda kind: (covered[kind], -_PRIORITY.index(kind)))


def _coverage(sequence: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many characters each kind of match covers (a repeat counts as what it repeats)."""
    covered: Counter[str] = Counter()
    for match in sequence:
        length = len(match["token"])
        pattern = match["pattern"]
        if pattern == "bruteforce":
            continue
        if pattern == "repeat":
            times = length // len(match["base_token"])
            inner = {
                kind: count * times for kind, count in _coverage(match["base_matches"]).items()
            }
            covered.update(inner)
            covered["pattern"] += length - sum(inner.values())
        elif pattern == "dictionary":
            name = match["dictionary_name"]
            kind = {"user_inputs": "personal", "passwords": "common"}.get(name, "words")
            covered[kind] += length
        else:
            covered["pattern"] += length
    return covered


async def breach_count(
    password: str, *, base_url: str, http: httpx.AsyncClient, time_limit: float = HIBP_TIMEOUT
) -> int | None:
    """How often Have I Been Pwned has seen the password: 0 if never, None if it did not say.

    Only the first 5 hex digits of the SHA-1 are sent; the answer lists the suffixes sharing
    them (`SUFFIX:COUNT` lines), padded with decoys of count 0 so its size tells nothing.
    """
    import httpx  # the app has imported it long before: only the command line does without

    digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    try:
        with anyio.fail_after(time_limit):
            response = await http.get(
                f"{base_url.rstrip('/')}/range/{prefix}",
                headers={"Add-Padding": "true"},
                timeout=time_limit,
            )
    except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
        log.warning("breached_password_check_unavailable", error=type(exc).__name__)
        return None
    if response.status_code != 200:
        log.warning("breached_password_check_unavailable", status=response.status_code)
        return None
    for line in response.text.splitlines():
        candidate, _, count = line.partition(":")
        if candidate.strip().upper() == suffix:
            try:
                return int(count)
            except ValueError:
                break
    else:
        return 0
    log.warning("breached_password_check_unavailable", error="unreadable answer")
    return None


# Hashes waiting or running, per core, before more are refused: at about 25 ms a hash, under a
# second of queued work. A flood of sign-ins past this gets a quick 503 to retry, rather than
# every sign-in waiting longer and longer until its deadline.
MAX_WAITING_PER_CORE = 32
_hashing: ThreadPoolExecutor | None = None
_in_hand = 0  # hashes handed to the pool and not yet answered


class HashingBusy(ServiceUnavailable):
    code = "busy"


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _yield_to_the_loop() -> None:
    """Lower the calling hashing thread's priority (on Linux a thread's niceness is its own).

    The event loop then takes a core from a hash the moment it has work, instead of waiting
    for the scheduler to share: requests flow during a flood of sign-ins, and the loop finishes
    a request in one go rather than in slices between hashes (which costs it CPU, its caches
    emptied by each hash). Hashing still has every cycle the rest leaves unused.
    """
    if sys.platform != "linux":  # elsewhere a thread's ID is no process ID to renice
        return
    thread = threading.get_native_id()
    # Never raises: a pool whose initializer fails refuses every hash from then on. A sandbox
    # that forbids it leaves hashing at the loop's priority, as it would be anyway.
    with suppress(OSError, OverflowError, ValueError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + HASHING_NICENESS))


def _hashing_pool() -> ThreadPoolExecutor:
    """Threads of hashing's own, one per core: more would only queue on the CPU and starve the
    event loop of it. A hash waits its turn in the pool's queue, so a thread that finishes one
    starts the next at once, without waiting for the event loop to hand it over."""
    global _hashing
    if _hashing is None:
        _hashing = ThreadPoolExecutor(
            cores(), thread_name_prefix="argon2", initializer=_yield_to_the_loop
        )
    return _hashing


async def _off_loop(function: Callable[[], T]) -> T:
    global _in_hand
    pool = _hashing_pool()
    if _in_hand >= MAX_WAITING_PER_CORE * cores():
        raise HashingBusy(
            "Too many sign-ins at this moment; try again in a second.",
            headers={"Retry-After": "1"},
        )
    _in_hand += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, function)
    finally:
        _in_hand -= 1


async def hash_password(password: str) -> str:
    return await _off_loop(partial(hasher.hash, password))


async def verify_password(stored_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await _off_loop(verify)


def needs_rehash(stored_hash: str) -> bool:
    return hasher.check_needs_rehash(stored_hash)
