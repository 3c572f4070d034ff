"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error response has `type`, `title`, `status`, `detail`, a stable machine-readable `code`
and the `request_id`; clients branch on `code`, never on `detail`, whose wording may change.

    ProblemError                 raise from services and routes; carries status and code
    ├── BadRequest        400    bad_request (or a more specific code)
    ├── Unauthorized      401    unauthenticated
    ├── Forbidden         403    forbidden
    ├── NotFound          404    not_found
    ├── Conflict          409    conflict
    ├── PayloadTooLarge   413    payload_too_large (with max_bytes)
    ├── Unprocessable     422    validation_failed
    ├── TooManyRequests   429    rate_limited (with Retry-After)
    └── ServiceUnavailable 503   unavailable (with Retry-After)

The handlers below also turn the framework's own errors into problems: request validation
(422 `validation_failed`, or 400 `malformed_json` / `invalid_encoding`), HTTP errors raised by
Starlette (404 `not_found`, 405 `method_not_allowed`, 413 `payload_too_large`, 415
`unsupported_media_type`), a database that is busy or whose connection was lost mid-request
(503 `unavailable` with `Retry-After`), and any other unhandled exception (500
`internal_error`, logged with its traceback and request ID, never shown to the client).
Validation details name the field and the rule but never echo the submitted value, which may
be a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backline.context import current_request_id
from backline.logging import get_logger

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)

# Stable codes for plain HTTP statuses raised by the framework or by `problem_for_status`.
STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "deadline_exceeded",
}


# RFC 9110's names where Python's table (before 3.13) still has the older ones.
TITLES: Mapping[int, str] = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    if status in TITLES:
        return TITLES[status]
    return HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"


def problem_type(code: str) -> str:
    return f"urn:backline:problem:{code}"


def problem_body(
    status: int,
    code: str | None = None,
    detail: str | None = None,
    title: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    phrase = status_title(status)
    code = code or STATUS_CODES.get(status, "error")
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or phrase,
        "status": status,
        "detail": detail or phrase,
        "code": code,
        "request_id": current_request_id(),
    }
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str | None = None,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    # Starlette is imported by the first response, not with the errors: the command line and
    # the worker raise these errors too, and never answer a request.
    from starlette.responses import JSONResponse

    return JSONResponse(
        problem_body(status, code, detail, **extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_JSON,
    )


class ProblemError(Exception):
    """An error with a client-facing status, code and detail."""

    status: int = 400
    code: str = "bad_request"
    title: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.extra = extra


class BadRequest(ProblemError):
    status, code = 400, "bad_request"


class Unauthorized(ProblemError):
    status, code = 401, "unauthenticated"


class Forbidden(ProblemError):
    status, code = 403, "forbidden"


class NotFound(ProblemError):
    status, code = 404, "not_found"


class Conflict(ProblemError):
    status, code = 409, "conflict"


class Unprocessable(ProblemError):
    status, code = 422, "validation_failed"


class TooManyRequests(ProblemError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(ProblemError):
    status, code = 503, "unavailable"


class PayloadTooLarge(ProblemError):
    """413, one body whichever limit refused: the framework's on request bodies (JSON bodies,
    `BACKLINE_MAX_JSON_BODY`), or Backline's own on uploads; `max_bytes` is the limit."""

    status, code, title = 413, "payload_too_large", "Content Too Large"

    def __init__(self, max_bytes: int | None) -> None:
        limit = f": at most {max_bytes} bytes" if max_bytes is not None else ""
        super().__init__(
            f"The content is larger than this endpoint accepts{limit}.", max_bytes=max_bytes
        )


def problem_of(exc: ProblemError) -> dict[str, Any]:
    return problem_body(exc.status, exc.code, exc.detail, title=exc.title, **exc.extra)


def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    from starlette.responses import JSONResponse  # see `problem_response`

    assert isinstance(exc, ProblemError)
    return JSONResponse(
        problem_of(exc), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else None
    if status == 400 and detail == "There was an error parsing the body":
        if isinstance(exc.__cause__, UnicodeDecodeError):
            return problem_response(400, "invalid_encoding", "The request body is not valid UTF-8.")
        return problem_response(
            400,
            "malformed_json",
            "The request body could not be read as JSON (too deeply nested, or a number too long).",
        )
    if status == 413:
        return _problem_error(request, PayloadTooLarge(request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)))
    if status == 405:
        # Imported here: it needs FastAPI's routing, which the command line's services (which
        # raise these errors too) do without; the app has imported it long before.
        from backline.allow import allowed_methods

        allowed = allowed_methods(request.scope) or (exc.headers or {}).get("Allow", "")
        return problem_response(405, None, detail, headers={"Allow": allowed})
    return problem_response(status, None, detail, headers=exc.headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # Imported here, not at the top: services raise these errors from the command line too,
    # which has no use for FastAPI (and the app has imported it long before any request).
    from fastapi.exceptions import RequestValidationError

    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        position = next(e["loc"][-1] for e in raw if e.get("type") == "json_invalid")
        return problem_response(
            400, "malformed_json", f"The request body is not valid JSON (at character {position})."
        )
    errors = [
        {
            "loc": [part for part in e.get("loc", ()) if part != "body"] or ["body"],
            "type": e.get("type"),
            "msg": e.get("msg"),
        }
        for e in raw
    ]
    fields = ", ".join(".".join(map(str, e["loc"])) for e in errors)
    return problem_response(
        422, "validation_failed", f"The request is not valid: {fields}.", errors=errors
    )


def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database_pool_exhausted", method=request.method, path=request.url.path)
    return problem_response(
        503,
        "unavailable",
        "The service is busy; please retry shortly.",
        headers={"Retry-After": "2"},
    )


def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    log.info("client_disconnected", method=request.method, path=request.url.path)
    return problem_response(
        400, "client_disconnected", "The request ended before its body was complete."
    )


def _database_lost(request: Request, exc: Exception) -> JSONResponse | None:
    """A statement failed because its connection was lost (the server restarted, failed over,
    or ended it): the pool has discarded the connection and the transaction did not commit
    (or, when the loss came during COMMIT, its outcome is the database's). A 503 to retry."""
    if not (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return None
    log.warning(
        "database_connection_lost",
        method=request.method,
        path=request.url.path,
        error=type(exc.orig).__name__,
    )
    return problem_response(
        503,
        "unavailable",
        "The database connection was lost; please retry shortly.",
        headers={"Retry-After": "1"},
    )


def _lost_or_unhandled(request: Request, exc: Exception) -> JSONResponse:
    if (lost := _database_lost(request, exc)) is not None:
        return lost
    raise exc  # any other database error goes on to `_unhandled`, as every other exception


def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    if (lost := _database_lost(request, exc)) is not None:  # also when raised in a middleware
        return lost
    log.error(
        "unhandled_exception",
        method=request.method,
        path=request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return problem_response(500, "internal_error", "Something went wrong on our side.")


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Every database connection busy for longer than the pool timeout: a 503, not a 500.
    app.add_exception_handler(PoolTimeout, _overloaded)
    # A database connection lost mid-request (see `db`): a 503, not a 500.
    app.add_exception_handler(DBAPIError, _lost_or_unhandled)
    # The client hung up mid-body: nobody hears the answer, and it is not the server's fault.
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unhandled)
