"""The application the HTTP benchmarks serve: Backline as configured, plus constant routes.

`/bench/constant` answers a constant through the whole middleware stack (and so through the
global rate limit); `/healthz`, exempt from rate limits, is the same work without the limit.
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
    return app
