"""Prometheus metrics, served at `GET /metrics`: the series every process records.

Labels are bounded: route templates (never raw paths), methods, status codes, and small fixed
sets of words (reasons, outcomes, directions); never user IDs or addresses. Under
`serve --workers N` the processes share their values through prometheus-client's multiprocess
mode (see `metrics.processes`); a gauge says there how the processes' values combine. The
backlogs read from the database at scrape time are in `ops.backlog`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ----------------------------------------------------------------------------------- HTTP
REQUESTS = Counter(
    "backline_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_DURATION = Histogram(
    "backline_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REQUESTS_IN_FLIGHT = Gauge(
    "backline_http_requests_in_flight",
    "HTTP requests being answered, the scrape's own included",
    multiprocess_mode="livesum",
)
DEADLINES_EXCEEDED = Counter(
    "backline_http_deadlines_exceeded_total", "Requests cancelled at their deadline", ["route"]
)
CONNECTIONS_REFUSED = Counter(
    "backline_http_connections_refused_total",
    "Connections closed by the server's own guards: over the cap, or headers too slow",
    ["reason"],
)
OUTBOUND_REQUESTS = Counter(
    "backline_outbound_requests_total", "Outbound HTTP calls", ["host", "outcome"]
)

# ----------------------------------------------------------------------------- rate limits
RATE_LIMIT_DECISIONS = Counter(
    "backline_ratelimit_decisions_total", "Rate-limit decisions", ["policy", "outcome"]
)
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "backline_ratelimit_storage_errors_total", "Rate-limit checks that could not reach storage"
)
RATE_LIMIT_DEGRADED = Gauge(
    "backline_ratelimit_degraded",
    "1 while rate-limit storage is unreachable (from any process)",
    multiprocess_mode="livemax",
)

# -------------------------------------------------------------------------------- accounts
# Neither says whether the address had an account: the same counts move for a stranger's.
LOGIN_FAILURES = Counter(
    "backline_login_failures_total", "Wrong passwords counted toward an address's pause"
)
LOCKOUTS = Counter("backline_login_lockouts_total", "Addresses paused after wrong passwords")
SESSIONS_REVOKED = Counter(
    "backline_sessions_revoked_total",
    "Sessions ended before they expired, by reason (logout, password_changed, session_limit...)",
    ["reason"],
)

# ------------------------------------------------------------------- email, uploads, chat
EMAILS = Counter("backline_emails_total", "Email delivery attempts by outcome", ["outcome"])
UPLOADS = Counter(
    "backline_uploads_total",
    "Audio and artwork uploads by way in (stream, form, direct) and outcome "
    "(stored, rejected, aborted, failed)",
    ["kind", "via", "outcome"],
)
UPLOAD_BYTES = Counter(
    "backline_upload_bytes_total", "Bytes of the uploads stored", ["kind", "via"]
)
CHAT_TOKENS = Counter(
    "backline_chat_tokens_total",
    "Tokens the chat provider reported using, by direction (prompt, completion)",
    ["direction"],
)

# -------------------------------------------------------------------------------- database
DB_POOL_IN_USE = Gauge(
    "backline_db_pool_connections_in_use",
    "Database connections checked out of the pools (of all processes)",
    multiprocess_mode="livesum",
)
