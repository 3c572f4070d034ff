"""Libraries that only some requests need, imported at the first of them, off the event loop.

WebAuthn's library (passkeys) and Authlib's and joserfc (sign-in with an OpenID provider) are
not imported at start-up: every server worker would hold them, some 7 MiB, whether or not one
request ever uses them. Their import takes 50 to 200 ms of CPU, too long to hold the event
loop for, so `await load(name)` runs it on a worker thread: the first request that needs the
library waits for it, the others go on meanwhile (more slowly: the import holds the GIL for
stretches, so the loop is still held, but for less time). Later calls return at once.

After `await load("webauthn")`, `from webauthn import ...` inside the function is a lookup in
`sys.modules`; a function that imports without `load` still works, holding the loop instead.
tests/test_lean_start.py checks that the app starts without these libraries.
"""

from __future__ import annotations

import importlib

import anyio.to_thread

_loaded: set[str] = set()


async def load(name: str) -> None:
    """Import module `name` on a worker thread, once per process."""
    if name in _loaded:
        return
    # Concurrent first callers each wait on a thread: the import lock lets one import it.
    await anyio.to_thread.run_sync(importlib.import_module, name)
    _loaded.add(name)
