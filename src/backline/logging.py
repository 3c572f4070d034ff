"""Structured logging: one pipeline for Backline's own events and every library's records.

structlog renders JSON in production and readable lines in development. Standard-library
records (uvicorn, SQLAlchemy, alembic, httpx) pass through the same processors, so every line
carries the request ID bound in `backline.context` and passes through `redact`.

`redact` masks, wherever they appear in an event (nested dicts, lists, header pairs, message
text, formatted tracebacks):

* values under sensitive keys: passwords, tokens, secrets, API keys, Authorization and Cookie
  headers, TINs/SSNs/EINs, signatures;
* values shaped like credentials: bearer/basic credentials, JWTs, US SSNs and EINs, passwords in
  URLs;
* the configured secret values themselves (signing key, SMTP password, API keys, database
  password), registered at start-up by `configure_logging`.

Lines go to standard error, one JSON object per line in production. While a span is current
(tracing on) a line also has `trace_id` and `span_id`. The same redactor masks what leaves the
process for Sentry (`backline.errorreports`) and the trace collector (`backline.tracing`);
`configure_logging` also starts error reporting when `BACKLINE_SENTRY_DSN` is set.

`write_event` is the short way for a line written on every request (the access log): the same
fields, context, redaction, renderer and stream as the pipeline, rendered once, without the
standard-library record and the processor chain around it, and with only the fields that can
hold a secret passed through `redact`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from backline import errorreports, tracing
from backline.config import Settings

MASK = "[redacted]"

# Key segments (split on `_`, `-`, `.` and camelCase) that mark a value as secret.
_SENSITIVE_SEGMENTS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "authorization",
        "cookie",
        "cookies",
        "apikey",
        "tin",
        "ssn",
        "ein",
        "credential",
        "credentials",
        "signature",
        "csrf",
        "otp",
    }
)
_SENSITIVE_KEYS = frozenset(
    {
        "api_key",
        "api-key",
        "set-cookie",
        "private_key",
        "x-api-key",
        "signing_key",
        "encryption_key",
        "encryption_keys",
        "aws_secret_access_key",
    }
)
_SECRET_WORDS = r"(?:pass(?:word|wd)?|pwd|token|secret|api_?key|authorization|cookie|signature)"  # noqa: S105 - a pattern
_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Token x", "Cookie: a=b; c=d" in header dumps
    (
        re.compile(r"(?im)^(\s*(?:proxy-)?(?:authorization|cookie|set-cookie)\s*:\s*).+$"),
        rf"\1{MASK}",
    ),
    # "password": "x" in JSON text, password='x' in reprs
    (
        re.compile(rf"""(?i)(["']?\w*{_SECRET_WORDS}\w*["']?\s*[:=]\s*)(["'])(?:\\.|(?!\2).)*\2"""),
        rf"\1\2{MASK}\2",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), MASK),
    (re.compile(r"\b\d{2}-\d{7}\b"), MASK),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@"), rf"\1:{MASK}@"),
    # refresh_token=x&..., client_secret=x in query strings and form bodies
    (re.compile(rf"(?i)(\w*{_SECRET_WORDS}\w*=)[^&\s\"']+"), rf"\1{MASK}"),
)
# What every pattern above needs somewhere in a text to match at all: a secret word, a scheme of
# credentials, a JWT's start or a URL (found in the lowered text by plain substring search), or
# the digits after an SSN's or EIN's hyphen. One cheap test that fails on nearly every value a
# line carries (routes, IDs, timestamps, plain messages), which then skips the eight patterns,
# some of which backtrack over every word of the text. Written as substring searches and one
# regex that begins with a literal because an alternation under `(?i)` is tried at every
# position of the text: five times slower on the hex IDs every line holds.
_SUSPECT_WORDS = (
    "pass",
    "pwd",
    "token",
    "secret",
    "apikey",
    "api_key",
    "authorization",
    "cookie",
    "signature",
    "bearer",
    "basic",
    "eyj",
    "://",
)
# The SSN and EIN patterns end at a word boundary: digits running on (a UUID's last group) are
# neither, and must not send every line of one user in twenty-seven through the patterns.
_SUSPECT_NUMBER = re.compile(r"-(?:\d\d-\d{4}|\d{7})\b")


def suspect(text: str) -> bool:
    """Whether any of `_PATTERNS` could match somewhere in `text` (false positives allowed)."""
    lowered = text.lower()
    for word in _SUSPECT_WORDS:
        if word in lowered:
            return True
    return "-" in text and _SUSPECT_NUMBER.search(text) is not None


def is_sensitive_key(key: object) -> bool:
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    return _is_sensitive_name(key)


@lru_cache(maxsize=4096)  # the same few dozen keys, on every line
def _is_sensitive_name(key: str) -> bool:
    lowered = key.lower()
    if lowered in _SENSITIVE_KEYS:
        return True
    return any(part.lower() in _SENSITIVE_SEGMENTS for part in _SPLIT.split(key) if part)


class Redactor:
    """A structlog processor masking secrets anywhere in an event dict."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self.secret_values: tuple[str, ...] = ()
        self.set_secret_values(secret_values)

    def set_secret_values(self, values: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secret_values = tuple(sorted({v for v in values if v}, key=len, reverse=True))

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        return {key: self._value(key, value) for key, value in event.items()}

    def _value(self, key: object, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if is_sensitive_key(key):
            return MASK
        if isinstance(value, int | float):
            return value
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, bytes):
            return self.scrub_text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {k: self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if len(items) == 2 and isinstance(items[0], str | bytes) and is_sensitive_key(items[0]):
                return [self._scrub(items[0]), MASK]  # a (header-name, value) pair
            return [self._scrub(item) for item in items]
        if isinstance(value, BaseException):
            return self.scrub_text(repr(value))
        return self.scrub_text(str(value))

    def scrub_line(self, line: dict[str, Any], skip: frozenset[str]) -> None:
        """Redact `line` in place as `__call__` would, but for the keys in `skip`.

        The plain strings (most of a line) are tested together, with one quick check of their
        joined text: only when it finds something suspect is each scrubbed on its own.
        """
        texts: list[str] = []
        for key, value in line.items():
            if key in skip:
                continue
            if value.__class__ is str and not is_sensitive_key(key):
                texts.append(key)
            else:
                line[key] = self._value(key, value)
        if texts and self._suspect("\n".join(line[key] for key in texts)):
            for key in texts:
                line[key] = self.scrub_text(line[key])

    def _suspect(self, text: str) -> bool:
        return any(secret in text for secret in self.secret_values) or suspect(text)

    def scrub_text(self, text: str) -> str:
        for secret in self.secret_values:
            if secret in text:
                text = text.replace(secret, MASK)
        if not suspect(text):
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


redactor = Redactor()


class _Sink(NamedTuple):
    """Where `configure_logging` sends every line: its handler (stream and lock) and renderer."""

    handler: logging.StreamHandler[TextIO]
    renderer: Processor


_sink: _Sink | None = None
# Fields the pipeline makes itself: never a secret, never redacted.
_MADE_HERE = frozenset({"event", "level", "logger", "timestamp", "trace_id", "span_id"})
_clock: tuple[int, str] = (-1, "")


def _now_iso() -> str:
    """The time now in ISO 8601, UTC, to the microsecond (`2026-12-03T15:36:52.081690Z`).

    Written here because `datetime.now(UTC).isoformat()` made again for every line was a tenth
    of an access-log line's cost: the date and time to the second are formatted once a second.
    """
    global _clock
    now = time.time()
    second = int(now)
    at, prefix = _clock
    if second != at:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _clock = (second, prefix)
    return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"


def _timestamp(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event["timestamp"] = _now_iso()
    return event


def _dumps(value: Any, **kwargs: Any) -> str:
    """JSON text of a log line: orjson's, which is a tenth of the standard library's cost;
    the standard library's for what orjson refuses (integers past 64 bits)."""
    default = kwargs.get("default")
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, default=default)


def _drop_color_message(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)  # uvicorn's ANSI duplicate of the message
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _timestamp,
        tracing.add_trace_ids,
    ]


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Route structlog and standard logging through one redacting renderer.

    Idempotent: calling it again (tests, `serve` after `check-config`) replaces the handler.
    """
    redactor.set_secret_values(settings.secret_values())
    renderer: Processor
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("backline")
    global _sink
    _sink = _Sink(handler, renderer)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "backline"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn's own access log would duplicate ours; its error log goes through the pipeline.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Libraries that log full URLs or every SQL parameter (password hashes, tokens) at DEBUG:
    # their own debug output is never wanted, whatever BACKLINE_LOG_LEVEL says.
    for noisy in ("httpx", "httpcore", "aiosqlite", "asyncio", "hpack", "multipart", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True

    structlog.configure(
        processors=[
            *_shared_processors(),
            errorreports.forward,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    errorreports.configure_error_reports(settings)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@lru_cache(maxsize=64)  # the few field sets callers trust
def _unredacted(trusted: frozenset[str]) -> frozenset[str]:
    return trusted | _MADE_HERE


def write_event(
    logger_name: str, event: str, fields: dict[str, Any], *, trusted: frozenset[str] = frozenset()
) -> None:
    """Write one INFO line as `get_logger(logger_name).info(event, **fields)` would: with the
    request's bound context, a timestamp, the level and the logger's name, redacted and
    rendered as every other line, to the same stream under the same lock; but rendered once.

    Fields named in `trusted` are made by the caller from nothing a client or a secret can
    fill (a route template, a status, a duration) and skip redaction; every other field, the
    bound context included, passes through it. The caller checks that INFO is enabled.
    """
    sink = _sink
    if sink is None:  # logging not configured: the ordinary way
        get_logger(logger_name).info(event, **fields)
        return
    line = structlog.contextvars.get_contextvars()
    line.update(fields)
    line["event"] = event
    line["level"] = "info"
    line["logger"] = logger_name
    line["timestamp"] = _now_iso()
    tracing.add_trace_ids(None, "info", line)
    redactor.scrub_line(line, _unredacted(trusted))
    rendered = sink.renderer(None, "info", line)
    if isinstance(rendered, bytes):
        rendered = rendered.decode()
    handler = sink.handler
    handler.acquire()
    try:
        handler.stream.write(f"{rendered}{handler.terminator}")
        handler.flush()
    finally:
        handler.release()
