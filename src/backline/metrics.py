"""Prometheus metrics, served at `GET /metrics`.

Labels are bounded: route templates (never raw paths), methods and status codes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "backline_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_DURATION = Histogram(
    "backline_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEADLINES_EXCEEDED = Counter(
    "backline_http_deadlines_exceeded_total", "Requests cancelled at their deadline", ["route"]
)
OUTBOUND_REQUESTS = Counter(
    "backline_outbound_requests_total", "Outbound HTTP calls", ["host", "outcome"]
)
EMAILS = Counter("backline_emails_total", "Email delivery attempts by outcome", ["outcome"])
RATE_LIMIT_DECISIONS = Counter(
    "backline_ratelimit_decisions_total", "Rate-limit decisions", ["policy", "outcome"]
)
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "backline_ratelimit_storage_errors_total", "Rate-limit checks that could not reach storage"
)
RATE_LIMIT_DEGRADED = Gauge(
    "backline_ratelimit_degraded", "1 while rate-limit storage is unreachable"
)
CONNECTIONS_REFUSED = Counter(
    "backline_http_connections_refused_total",
    "Connections closed by the server's own guards: over the cap, or headers too slow",
    ["reason"],
)
