"""`GET /healthz` (the process is alive), `GET /readyz` (its dependencies answer), `GET /metrics`.

All three are public: load balancers and scrapers call them without credentials. They hold
nothing personal; `/metrics` should still be kept off the public internet by the proxy.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backline.errors import problem_response
from backline.ops.checks import run_checks
from backline.routing import router

public_router = router(public=True, tags=["operations"])


@public_router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@public_router.get(
    "/readyz",
    summary="Readiness: database, Redis and storage reachable",
    responses={503: {"description": "A dependency is down; `checks` names it"}},
)
async def readyz(request: Request) -> Any:
    results = await run_checks(request.app.state.readiness_checks)
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        return problem_response(
            503,
            "not_ready",
            f"Not ready: {', '.join(failed)} unavailable.",
            headers={"Retry-After": "5"},
            checks=results,
        )
    return {"status": "ok", "checks": results}


@public_router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
