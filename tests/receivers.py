"""Loopback receivers for what Backline sends out of the process: a recording HTTP endpoint
that stands in for an OTLP/HTTP collector, a Sentry ingest URL or an outbound API.

`Receiver(answer)` answers every request with `answer` and keeps each request's method, path,
headers and (decompressed) body; `Receiver.wait_for(predicate)` polls, bounded, until what it
received satisfies the predicate.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

T = TypeVar("T")


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _decompressed(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        return bytes(brotli.decompress(body))
    return body


class Receiver:
    def __init__(self, answer: bytes = b"{}", content_type: str = "application/json") -> None:
        self.received: list[Received] = []
        lock = self.lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                body = _decompressed(body, self.headers.get("Content-Encoding", ""))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    received.append(Received(self.command, self.path, headers, body))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _record  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, found: Callable[[list[Received]], T | None], seconds: float = 30) -> T:
        deadline = time.monotonic() + seconds
        while True:
            result = found(self.snapshot())
            if result:
                return result
            assert time.monotonic() < deadline, f"not received in {seconds} s"
            time.sleep(0.1)


@dataclass
class ExportedSpan:
    name: str
    kind: int
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def spans_of(received: list[Received]) -> list[ExportedSpan]:
    """Every span in the OTLP/HTTP export requests received (protobuf-encoded)."""
    spans: list[ExportedSpan] = []
    for request in received:
        if request.path != "/v1/traces":
            continue
        export = ExportTraceServiceRequest()
        export.ParseFromString(request.body)
        for resource in export.resource_spans:
            for scoped in resource.scope_spans:
                for span in scoped.spans:
                    spans.append(
                        ExportedSpan(
                            name=span.name,
                            kind=span.kind,
                            scope=scoped.scope.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
    return spans
