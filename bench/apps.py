"""The application the HTTP benchmarks serve: Backline as configured, plus constant routes.

`create_app_without_hashing` is the same app with password checks that always succeed at
once (still handed to a hashing thread): what a login costs beside its hash.

`/bench/constant` answers a constant through the whole middleware stack (and so through the
global rate limit); `/healthz`, exempt from rate limits, is the same work without the limit.
FastAPI tries the included routers in order, and each miss costs a few microseconds, so the
bench routes go first: both trivial routes are then found after as few misses as each other,
and no comparison measures a route's place in the table.
"""

from __future__ import annotations

from backline.app import Backline
from backline.app import create_app as create_backline
from backline.routing import router

bench_router = router(public=True, prefix="/bench")


@bench_router.get("/constant")
async def constant() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Backline:
    app = create_backline()
    app.include_router(bench_router)
    app.router.routes.insert(0, app.router.routes.pop())
    return app


class _NoHashing:
    """Stands in for argon2's PasswordHasher: every password is right, at no cost."""

    def verify(self, stored_hash: str, password: str) -> bool:
        return True

    def check_needs_rehash(self, stored_hash: str) -> bool:
        return False


def create_app_without_hashing() -> Backline:
    from backline.accounts import passwords

    # `backline.app` (imported above) has made the dummy hash sign-in checks unknown addresses
    # against with the real hasher; this one never hashes.
    passwords.hasher = _NoHashing()  # type: ignore[assignment]
    return create_app()
