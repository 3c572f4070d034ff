"""Traces: OpenTelemetry spans over OTLP/HTTP, off unless a collector is configured.

`configure_tracing(settings, service)` turns tracing on in the calling process when
`Settings.traces_endpoint` names a collector (`BACKLINE_OTLP_ENDPOINT`, or OpenTelemetry's own
`OTEL_EXPORTER_OTLP_ENDPOINT`). Only then is OpenTelemetry imported (`backline.tracing.otel`):
a process without a collector never loads it. Each process sets itself up: `backline serve`
builds the application in every worker process (`create_app`), `backline worker` at its start.

The hooks below are what the rest of Backline calls; each does nothing while tracing is off:

* `wrap_asgi(app)`: a server span per request (inside `RequestContext`, so the request ID is
  known), renamed to its route template once routed (`end_request`);
* `instrument_engine(engine)`: a span per SQL statement;
* `instrument_http_client(client)`: a span per outbound call, which carries W3C `traceparent`;
* Redis commands and S3 calls (aiobotocore) are instrumented process-wide when tracing starts.

Every span carries the request ID (`backline.request_id`) of the request it belongs to, and its
attributes, events and status pass through the log redactor before they are exported.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from structlog.typing import EventDict, WrappedLogger

from backline.config import Settings

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.types import ASGIApp

    from backline.tracing.otel import Tracing

REQUEST_ID_ATTRIBUTE = "backline.request_id"
_active: Tracing | None = None


def enabled() -> bool:
    return _active is not None


def configure_tracing(settings: Settings, service: str) -> bool:
    """Start (or re-point) tracing in this process when a collector is configured; else turn
    it off. Answers whether tracing is on."""
    global _active
    endpoint = settings.traces_endpoint
    if endpoint is None:
        if _active is not None:
            _active.stop_exporting()
            _active = None
        return False
    from backline.tracing import otel

    _active = otel.start(settings, service, endpoint)
    return True


def wrap_asgi(app: ASGIApp) -> ASGIApp:
    return app if _active is None else _active.wrap_asgi(app)


def end_request(method: str, route: str) -> None:
    """Name the request's server span after its route template, now that it is known."""
    if _active is not None:
        _active.end_request(method, route)


def instrument_engine(engine: AsyncEngine) -> None:
    if _active is not None:
        _active.instrument_engine(engine)


def instrument_http_client(client: httpx.AsyncClient) -> None:
    if _active is not None:
        _active.instrument_http_client(client)


def span(name: str) -> AbstractContextManager[object]:
    """A span of Backline's own around some work outside a request (a worker's job)."""
    return nullcontext() if _active is None else _active.span(name)


def flush(timeout_seconds: float = 5.0) -> None:
    """Export the spans still queued (at shutdown)."""
    if _active is not None:
        _active.flush(timeout_seconds)


def add_trace_ids(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A log processor: the current trace and span IDs on every line written inside a span."""
    if _active is not None:
        ids: dict[str, Any] = _active.current_ids()
        for key, value in ids.items():
            event.setdefault(key, value)
    return event
