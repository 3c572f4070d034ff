"""What a span says passes through the logs' redactor before it is exported, and carries the
request ID it was started under."""

from __future__ import annotations

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from backline.logging import MASK
from backline.tracing import REQUEST_ID_ATTRIBUTE
from backline.tracing.otel import RedactingProcessor


def test_span_attributes_events_and_status_are_masked_and_stamped() -> None:
    exporter = InMemorySpanExporter()
    processor = RedactingProcessor()
    processor.replace(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")

    def fail() -> None:
        with tracer.start_as_current_span("GET /reset-password") as span:
            span.set_attribute("url.full", "http://x/reset-password?token=span-token-1&a=b")
            span.set_attribute("http.request.header.cookie", ["session=span-cookie-1"])
            span.set_attribute("http.response.status_code", 500)
            raise RuntimeError("failed with password=span-pw-1 and ssn 123-45-6789")

    with structlog.contextvars.bound_contextvars(request_id="span-req-1"):
        with pytest.raises(RuntimeError):
            fail()
        with tracer.start_as_current_span("SELECT", attributes={"tin": 123456789}):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    provider.shutdown()

    first, second, outside = exporter.get_finished_spans()
    assert first.attributes is not None
    assert first.attributes["url.full"] == f"http://x/reset-password?token={MASK}&a=b"
    assert first.attributes["http.request.header.cookie"] == MASK
    assert first.attributes["http.response.status_code"] == 500
    assert first.attributes[REQUEST_ID_ATTRIBUTE] == "span-req-1"
    [event] = first.events
    assert event.attributes is not None
    text = repr(dict(event.attributes)) + str(first.status.description)
    for secret in ("span-pw-1", "123-45-6789"):
        assert secret not in text
    assert "RuntimeError" in text
    assert second.attributes == {"tin": MASK, REQUEST_ID_ATTRIBUTE: "span-req-1"}
    assert REQUEST_ID_ATTRIBUTE not in (outside.attributes or {})
