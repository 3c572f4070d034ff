"""OpenTelemetry itself, imported only when tracing is configured (see `backline.tracing`).

One `TracerProvider` per process, with the SDK's batching OTLP/HTTP exporter behind a
redacting span processor: each ended span is copied with its name, attributes, events and status
passed through the log redactor (`backline.logging.redactor`), so a token in a query string, a
password in an exception message or a cookie header never leaves the process. The exporter reads
OpenTelemetry's usual variables (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`,
`OTEL_BSP_*`), the sampler `OTEL_TRACES_SAMPLER`, the resource `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`.

Instrumentations: the ASGI middleware (server spans, `traceparent` accepted from clients),
SQLAlchemy (per engine), httpx (per client: Backline's one outbound client), Redis and
aiobotocore (process-wide, once).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import httpx
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.botocore import AiobotocoreInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sqlalchemy_version
from opentelemetry.metrics import get_meter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Scope

from backline import __version__
from backline.config import Settings
from backline.context import current_request_id
from backline.logging import MASK, get_logger, is_sensitive_key, redactor
from backline.tracing import REQUEST_ID_ATTRIBUTE

log = get_logger(__name__)
# Probes and scrapes every few seconds would drown the traces that matter.
UNTRACED_PATHS = "/healthz,/metrics"
# Statements and commands outside any request or job (the workers' polling, once a second) are
# not exported: each would be a trace of its own.
ROOTLESS_DROPPED = frozenset(
    {"opentelemetry.instrumentation.sqlalchemy", "opentelemetry.instrumentation.redis"}
)


def _redact_value(key: str, value: AttributeValue) -> AttributeValue:
    if is_sensitive_key(key):
        return MASK
    if isinstance(value, str):
        return redactor.scrub_text(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [redactor.scrub_text(v) if isinstance(v, str) else v for v in value]
    return value


def _redact_attributes(attributes: Mapping[str, AttributeValue] | None) -> dict[str, Any]:
    return {key: _redact_value(key, value) for key, value in (attributes or {}).items()}


def redacted(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` whose text has passed through the log redactor."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redactor.scrub_text(status.description))
    return ReadableSpan(
        name=redactor.scrub_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redact_attributes(span.attributes),
        events=[
            Event(event.name, _redact_attributes(event.attributes), event.timestamp)
            for event in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingProcessor(SpanProcessor):
    """Stamps each span with the current request ID; hands a redacted copy of each ended span
    to the exporting processor (replaceable: a reconfiguration points it elsewhere)."""

    def __init__(self) -> None:
        self.exporting: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        request_id = current_request_id()
        if request_id is not None:
            span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)

    def on_end(self, span: ReadableSpan) -> None:
        exporting = self.exporting
        if exporting is None:
            return
        scope = span.instrumentation_scope
        if span.parent is None and scope is not None and scope.name in ROOTLESS_DROPPED:
            return
        exporting.on_end(redacted(span))

    def replace(self, exporting: SpanProcessor | None) -> None:
        old, self.exporting = self.exporting, exporting
        if old is not None:
            old.shutdown()

    def shutdown(self) -> None:
        self.replace(None)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        exporting = self.exporting
        return exporting.force_flush(timeout_millis) if exporting is not None else True


def _resource(settings: Settings, service: str) -> Resource:
    attributes: dict[str, str] = {
        "service.version": __version__,
        "deployment.environment.name": settings.env,
    }
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = service
    return Resource.create(attributes)


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span's first name: the method alone (raw paths carry IDs; `end_request`
    renames it after the route template)."""
    return str(scope.get("method", "HTTP")), {}


class Tracing:
    def __init__(self, settings: Settings, service: str) -> None:
        self.provider = TracerProvider(resource=_resource(settings, service))
        self.processor = RedactingProcessor()
        self.provider.add_span_processor(self.processor)
        trace.set_tracer_provider(self.provider)
        self.endpoint: str | None = None
        self.engine_tracer = self.provider.get_tracer(
            "opentelemetry.instrumentation.sqlalchemy", sqlalchemy_version
        )
        self.connections_usage = get_meter(__name__).create_up_down_counter(
            "db.client.connections.usage", unit="connections"
        )
        RedisInstrumentor().instrument(tracer_provider=self.provider)
        instrumentor = AiobotocoreInstrumentor()  # type: ignore[no-untyped-call]
        instrumentor.instrument(tracer_provider=self.provider)

    def export_to(self, endpoint: str) -> None:
        if endpoint != self.endpoint:
            self.processor.replace(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            self.endpoint = endpoint
            log.info("tracing_started", endpoint=endpoint)

    def stop_exporting(self) -> None:
        self.processor.replace(None)
        self.endpoint = None

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        return OpenTelemetryMiddleware(
            app,
            excluded_urls=UNTRACED_PATHS,
            default_span_details=_span_details,
            tracer_provider=self.provider,
            exclude_spans=["receive", "send"],  # one span per body chunk of an upload, else
        )

    def end_request(self, method: str, route: str) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            user_id = structlog.contextvars.get_contextvars().get("user_id")
            if isinstance(user_id, str):
                span.set_attribute("enduser.id", user_id)

    def instrument_engine(self, engine: AsyncEngine) -> None:
        EngineTracer(  # type: ignore[no-untyped-call]
            self.engine_tracer, engine.sync_engine, self.connections_usage
        )

    def instrument_http_client(self, client: httpx.AsyncClient) -> None:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def span(self, name: str) -> AbstractContextManager[object]:
        return self.provider.get_tracer("backline").start_as_current_span(name)

    def flush(self, timeout_seconds: float) -> None:
        self.processor.force_flush(int(timeout_seconds * 1000))

    def current_ids(self) -> dict[str, str]:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return {}
        return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


_tracing: Tracing | None = None


def start(settings: Settings, service: str, endpoint: str) -> Tracing:
    """This process's tracing, made on first use, exporting to `endpoint`."""
    global _tracing
    if _tracing is None:
        _tracing = Tracing(settings, service)
    _tracing.export_to(endpoint)
    return _tracing
