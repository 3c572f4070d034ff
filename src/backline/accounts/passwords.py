"""Password hashing with Argon2id (argon2-cffi), always off the event loop.

Parameters are OWASP's recommended minimum for Argon2id: 19 MiB of memory, 2 iterations,
1 lane. Hashing runs in a worker thread (argon2-cffi releases the GIL), so a burst of logins
never stalls other requests. `needs_rehash` tells when a stored hash used older parameters.
"""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backline.errors import Unprocessable

MIN_LENGTH = 8
MAX_LENGTH = 128

hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class WeakPassword(Unprocessable):
    code = "weak_password"


def check_length(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise WeakPassword(f"A password must have {MIN_LENGTH} to {MAX_LENGTH} characters.")


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(hasher.hash, password)


async def verify_password(stored_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(verify)


def needs_rehash(stored_hash: str) -> bool:
    return hasher.check_needs_rehash(stored_hash)
