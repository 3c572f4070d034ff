"""`GET /healthz` (the process is alive), `GET /readyz` (its dependencies answer), `GET /metrics`.

Health and readiness are public: load balancers call them without credentials. `/metrics` is
not: its counters move with what people do (emails delivered, say), so outside development it
answers only a scraper presenting `Authorization: Bearer <BACKLINE_METRICS_TOKEN>`, and is 404
when no token is set. Where a token is set it is required in development too.

A scrape answers the series of every process of the server (see `metrics.processes`) and the
backlogs read from the database as it is answered (see `ops.backlog`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from backline.apidoc.declare import raises
from backline.config import Settings
from backline.errors import NotFound, Unauthorized, problem_response
from backline.metrics.processes import registry
from backline.ops import backlog
from backline.ops.checks import run_checks
from backline.routing import router

public_router = router(public=True, tags=["operations"])


@public_router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@public_router.get(
    "/readyz",
    summary="Readiness: database, Redis and storage reachable",
)
@raises((503, "not_ready"))
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


def _allow_scrape(settings: Settings, authorization: str | None) -> None:
    """Let the request read the metrics, or raise 404 (none served) or 401 (wrong token)."""
    if settings.metrics_token is None:
        if settings.env == "development":
            return
        raise NotFound("Not Found")  # as any unknown path: nothing here to find
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    # Constant time: how much of a guess matched must not show in the time of the answer.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized(
            "The metrics need the scraper's bearer token.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


class _Scrape:
    """The processes' series, then those read for this scrape."""

    def __init__(self, recorded: Collector, read: list[Metric]) -> None:
        self.recorded, self.read = recorded, read

    def collect(self) -> Iterable[Metric]:
        yield from self.recorded.collect()
        yield from self.read


@public_router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    _allow_scrape(request.app.state.settings, request.headers.get("authorization"))
    read = await backlog.read(request.app.state.engine)
    return Response(generate_latest(_Scrape(registry(), read)), media_type=CONTENT_TYPE_LATEST)
