"""The one shared outbound HTTP client (httpx).

Every outbound call (email API, LLM provider, breached-password check) goes through the client
made here, so each one:

* carries the current request's `X-Request-ID` (or none outside a request), and a
  `User-Agent` naming Backline;
* has the report's 30 s default timeout (a caller may pass a shorter one, such as email's 10 s);
* is logged with its host, status and duration, and counted in the metrics;
* when tracing is on, is a span of the current trace and carries W3C `traceparent`.
"""

from __future__ import annotations

import time

import httpx

from backline import __version__, tracing
from backline.context import REQUEST_ID_HEADER, current_request_id
from backline.logging import get_logger
from backline.metrics import OUTBOUND_REQUESTS

log = get_logger(__name__)


async def _stamp(request: httpx.Request) -> None:
    request_id = current_request_id()
    if request_id is not None:
        request.headers[REQUEST_ID_HEADER] = request_id
    request.extensions["backline_start"] = time.perf_counter()


async def _record(response: httpx.Response) -> None:
    request = response.request
    start = request.extensions.get("backline_start", time.perf_counter())
    OUTBOUND_REQUESTS.labels(request.url.host, str(response.status_code)).inc()
    log.info(
        "outbound_request",
        method=request.method,
        host=request.url.host,
        path=request.url.path,
        status=response.status_code,
        duration_ms=round((time.perf_counter() - start) * 1000, 2),
    )


def create_http_client(timeout: float, **kwargs: object) -> httpx.AsyncClient:
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": f"backline/{__version__}"},
        event_hooks={"request": [_stamp], "response": [_record]},
        follow_redirects=False,
        **kwargs,  # type: ignore[arg-type]
    )
    tracing.instrument_http_client(client)
    return client
