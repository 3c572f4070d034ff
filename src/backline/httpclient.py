"""The one shared outbound HTTP client (httpx).

Every outbound call (email API, LLM provider, breached-password check) goes through the client
made here, so each one:

* carries the current request's `X-Request-ID` (or none outside a request), and a
  `User-Agent` naming Backline;
* has the report's 30 s default timeout (a caller may pass a shorter one, such as email's 10 s);
* is logged with its host, status and duration, and counted in the metrics;
* when tracing is on, is a span of the current trace and carries W3C `traceparent`.

Its TLS context trusts what httpx's default does (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, else
certifi's bundle), but reads those certificates at the first request rather than when the
client is made: that takes some 30 ms and 2 MiB in every process, and a server worker may
never call out at all (SMTP email, no assistant, no OpenID provider).
"""

from __future__ import annotations

import os
import ssl
import sys
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


class _DeferredTrust:
    """A TLS context as `httpx.create_ssl_context()` makes it by default, whose CA certificates
    are loaded by the first request (a request hook, run before any connection is made)."""

    def __init__(self) -> None:
        # What ssl.create_default_context() sets, but the certificates: TLS 1.2 and later,
        # the server's certificate and host name checked, SSLKEYLOGFILE honoured.
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if sys.version_info >= (3, 13):  # as create_default_context() there
            self.context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and not sys.flags.ignore_environment:
            self.context.keylog_filename = keylog
        self._loaded = False

    async def __call__(self, request: httpx.Request) -> None:
        if self._loaded:
            return
        if os.environ.get("SSL_CERT_FILE"):
            self.context.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            self.context.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
        else:
            import certifi  # httpx's own dependency, as its default

            self.context.load_verify_locations(cafile=certifi.where())
        self._loaded = True


def create_http_client(timeout: float, **kwargs: object) -> httpx.AsyncClient:
    trust = None
    if "verify" not in kwargs and "transport" not in kwargs:
        trust = _DeferredTrust()
        kwargs["verify"] = trust.context
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": f"backline/{__version__}"},
        event_hooks={"request": [*([trust] if trust else []), _stamp], "response": [_record]},
        follow_redirects=False,
        **kwargs,  # type: ignore[arg-type]
    )
    tracing.instrument_http_client(client)
    return client
