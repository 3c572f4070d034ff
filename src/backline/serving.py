"""The HTTP/1.1 protocol `backline serve` runs: uvicorn's httptools protocol with two guards.

uvicorn closes idle keep-alive connections, but a client that opens a connection and then
sends its request line and headers a few bytes at a time ("slowloris") is held as long as it
keeps dripping, and there is no bound on how many connections a process holds. So:

* **Header timeout** (`BACKLINE_HEADER_TIMEOUT`): from the moment a connection opens, and again
  from the first byte of each further request on it, the request line and headers must be
  complete within this many seconds, or the connection is closed. Bodies are not covered:
  uploads have their own idle timeout (`BACKLINE_UPLOAD_TIMEOUT`) and every request a deadline.
* **Connection cap** (`BACKLINE_MAX_CONNECTIONS`, per process): a connection opened while this
  many are open is answered 503 with `Connection: close` and closed at once.

The limits come from the settings, read once per server process (`serve --workers N` starts
each worker from the same environment).
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import cache
from typing import Any, NamedTuple

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from backline.config import Settings
from backline.errors import PROBLEM_JSON, problem_body
from backline.logging import get_logger
from backline.metrics import CONNECTIONS_REFUSED

log = get_logger(__name__)
WARN_EVERY_SECONDS = 60.0


class Limits(NamedTuple):
    header_timeout: float
    max_connections: int


@cache
def limits() -> Limits:
    settings = Settings()
    return Limits(settings.header_timeout, settings.max_connections)


def _refusal() -> bytes:
    body = json.dumps(
        problem_body(
            503, "unavailable", "The server has too many connections open; please retry shortly."
        ),
        separators=(",", ":"),
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\n"
        "retry-after: 1\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()
_last_warning = 0.0


def _warn_at_capacity(maximum: int) -> None:
    """One warning a minute at most: a flood of connections must not become a flood of logs."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning("connection_limit_reached", max_connections=maximum)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout, self.max_connections = limits()
        self.header_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.refused = True
            CONNECTIONS_REFUSED.labels("connection_limit").inc()
            _warn_at_capacity(self.max_connections)
            transport.write(REFUSAL)
            transport.close()
            return
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        if not self.refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_timer()  # a further request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def _start_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            CONNECTIONS_REFUSED.labels("header_timeout").inc()
            self.transport.close()
