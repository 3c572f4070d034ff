"""One access-log line and the Prometheus request metrics per HTTP request (and the count of
requests in flight).

The line has the method, the route template (`/api/tracks/{track_id}`, never the raw path or
query string, which may carry tokens; fixed framework paths such as `/docs` as they are), the
status, the duration in milliseconds, and, through
the bound context, the request ID and the user ID when known. Unmatched paths are logged as
`<unmatched>` so that scanners cannot flood the metrics with one series per path. When tracing
is on, the request's server span is named after the same route template.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline import tracing
from backline.logging import get_logger
from backline.metrics import REQUEST_DURATION, REQUESTS, REQUESTS_IN_FLIGHT

log = get_logger("backline.access")
_enabled = logging.getLogger("backline.access").isEnabledFor  # cached by `logging` per level


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if "endpoint" in scope and not scope.get("path_params"):
        return str(scope["path"])  # a fixed-path framework route, such as /docs
    return "<unmatched>"


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        method = scope["method"]  # before the app runs: HEAD is served as GET inside
        status = 500
        REQUESTS_IN_FLIGHT.inc()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                tracing.end_request(method, route_template(scope))  # the span ends with the body
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            REQUESTS_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            REQUEST_DURATION.labels(method, route).observe(elapsed)
            if _enabled(logging.INFO):  # else building the line would be thrown away, per request
                log.info(
                    "request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
