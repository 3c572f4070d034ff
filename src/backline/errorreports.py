"""Error reports to Sentry when `BACKLINE_SENTRY_DSN` is set; `sentry-sdk` is imported only then.

Reports come from the log pipeline, one path for every process (server, worker, CLI):

* every error-level log event becomes a Sentry event: its exception with the traceback when it
  has one (an unhandled exception in a request, a failed worker round), else its message;
  tagged with the request ID and the event's name, and with the user's ID when known;
* lower-level log events become that event's breadcrumbs; each request has its own scope
  (`request_scope`), so a report carries only its own request's trail.

Everything sent passes through the logs' redactor (`backline.logging.redactor`) in
`before_send` and `before_breadcrumb`: passwords, tokens, TINs, cookies and the configured
secrets are masked exactly as in the logs. Frame locals and request bodies are never collected,
and Sentry's automatic integrations stay off.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from types import ModuleType, TracebackType
from typing import Any

from structlog.typing import EventDict, WrappedLogger

from backline import __version__
from backline.config import Settings

_sdk: ModuleType | None = None
_ERROR_LEVELS = frozenset({"error", "critical"})
_INTERNAL_KEYS = frozenset({"exc_info", "stack_info", "_record", "_from_structlog"})

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def enabled() -> bool:
    return _sdk is not None


def configure_error_reports(settings: Settings) -> bool:
    """Start reporting to the configured DSN (again, if settings changed), or stop."""
    global _sdk
    if settings.sentry_dsn is None:
        if _sdk is not None:
            _sdk.get_client().close(timeout=2)
            # A client without a DSN (not even SENTRY_DSN) sends nothing; with Sentry's defaults
            # it would still patch FastAPI, httpx and the database drivers (see below).
            _sdk.init(dsn="", default_integrations=False, auto_enabling_integrations=False)
            _sdk = None
        return False
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.integrations.excepthook import ExcepthookIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.env,
        release=f"backline@{__version__}",
        include_local_variables=False,
        max_request_body_size="never",
        # With its defaults Sentry patches every library it finds installed (FastAPI, httpx,
        # Redis, SQLAlchemy, asyncpg, OpenAI), process-wide; its FastAPI patch reads each
        # request's form, file parts included, before the route.
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[AtexitIntegration(), DedupeIntegration(), ExcepthookIntegration()],
        before_send=_before_send,
        before_breadcrumb=_before_breadcrumb,
    )
    _sdk = sentry_sdk
    return True


def request_scope(request_id: str) -> AbstractContextManager[object]:
    """A scope of its own for one request (its breadcrumbs, its tags), when reporting."""
    if _sdk is None:
        return nullcontext()
    return _RequestScope(_sdk, request_id)


class _RequestScope:
    def __init__(self, sdk: ModuleType, request_id: str) -> None:
        self.manager: AbstractContextManager[Any] = sdk.isolation_scope()
        self.request_id = request_id

    def __enter__(self) -> object:
        scope = self.manager.__enter__()
        scope.set_tag("request_id", self.request_id)
        return scope

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.manager.__exit__(kind, value, traceback)


def flush(timeout_seconds: float = 2.0) -> None:
    if _sdk is not None:
        _sdk.flush(timeout=timeout_seconds)


def _exc_info(value: object) -> ExcInfo | None:
    if value is True:
        found = sys.exc_info()
        return found if found[0] is not None and found[1] is not None else None
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    return None


def forward(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A log processor: the event to Sentry, as a report or a breadcrumb, when reporting."""
    sdk = _sdk
    if sdk is None:
        return event
    from backline.logging import redactor

    fields = redactor(logger, method, {k: v for k, v in event.items() if k not in _INTERNAL_KEYS})
    name = str(fields.pop("event", method))
    level = str(fields.pop("level", method))
    fields.pop("timestamp", None)
    if level not in _ERROR_LEVELS:
        sdk.add_breadcrumb(
            category=str(fields.pop("logger", "backline")),
            message=name,
            level="warning" if level == "warning" else level,
            data=fields,
        )
        return event
    with sdk.new_scope() as scope:
        scope.set_tag("event", name)
        request_id = fields.get("request_id")
        if isinstance(request_id, str):
            scope.set_tag("request_id", request_id)
        user_id = fields.get("user_id")
        if isinstance(user_id, str):
            scope.set_user({"id": user_id})
        scope.set_context("log", fields)
        exc_info = _exc_info(event.get("exc_info"))
        if exc_info is not None:
            sdk.capture_exception(exc_info)
        else:
            sdk.capture_message(name, level="error")
    return event


def _redact(data: Any) -> Any:
    from backline.logging import redactor

    return dict(redactor(None, "report", data))


def _before_send(event: Any, hint: dict[str, Any]) -> Any:
    return _redact(event)


def _before_breadcrumb(crumb: Any, hint: dict[str, Any]) -> Any:
    return _redact(crumb)
