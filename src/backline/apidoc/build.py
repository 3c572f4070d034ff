"""The document builder: `install(app)` replaces FastAPI's `app.openapi` with one that tells
the truth about errors, security and text.

For each operation the error responses are made from (see `declare`):

* what every route answers: 422 `nul_character` (a NUL in the address), 429 `rate_limited`
  (the global limit), 503 `unavailable` (no database connection free), 504
  `deadline_exceeded`; what the rate limiter exempts has no 429;
* what its inputs imply: a JSON body can be malformed (400), too large (413), of another media
  type (415) or invalid (422); parameters can be invalid (422);
* the marks of its route class (`admit`), its function and every dependency it resolves.

FastAPI's own 422 (`application/json`, `{"detail": [...]}`) is never served, so it goes. Signed-in
operations get their security requirement: a bearer token, or the session cookie (with the CSRF
header when the method changes something). Every text a request can carry refuses NUL.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from backline.apidoc.declare import Problem, declared, marked
from backline.apidoc.responses import (
    HEADERS,
    PROBLEM_SCHEMA,
    SCHEMA_NAME,
    example,
    example_name,
    problem_responses,
)
from backline.apidoc.security import apply_security, declare_schemes
from backline.apidoc.text import refuse_nul
from backline.middleware.ratelimit import EXEMPT

EVERY_ROUTE = frozenset({Problem(422, "nul_character"), Problem(504, "deadline_exceeded")})
LIMITED = frozenset({Problem(429, "rate_limited"), Problem(503, "unavailable")})
JSON_BODY = frozenset(
    {
        Problem(400, "malformed_json"),
        Problem(400, "invalid_encoding"),
        Problem(400, "client_disconnected"),
        Problem(413, "payload_too_large"),
        Problem(415, "unsupported_media_type"),
        Problem(422, "validation_failed"),
    }
)
FORM_BODY = frozenset({Problem(400, "client_disconnected"), Problem(422, "validation_failed")})
INVALID = frozenset({Problem(422, "validation_failed")})


def _has_parameters(dependant: Dependant) -> bool:
    if dependant.path_params or dependant.query_params or dependant.header_params:
        return True
    return any(_has_parameters(sub) for sub in dependant.dependencies)


def problems_of(route: RouteContext) -> frozenset[Problem]:
    admit = getattr(route.original_route, "admit", None)
    found = EVERY_ROUTE | declared(route.dependant) | marked(admit)
    if route.path not in EXEMPT:
        found |= LIMITED
    if route.body_field is not None:
        is_form = isinstance(getattr(route.body_field, "field_info", None), params.Form)
        found |= FORM_BODY if is_form else JSON_BODY
    if _has_parameters(route.dependant):
        found |= INVALID
    return found


def _is_error(status: str) -> bool:
    return status[:1] in {"4", "5"}


def build(app: FastAPI) -> dict[str, Any]:
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    examples: dict[str, Any] = {}
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        problems = problems_of(route)
        examples.update({example_name(p): example(p) for p in problems})
        for method in route.methods or ():
            errors = problem_responses(p for p in problems if p.answers(method))
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            for status in [s for s in responses if _is_error(s) and s not in errors]:
                del responses[status]
            responses.update(errors)
            operation["responses"] = dict(sorted(responses.items()))
            if getattr(route.original_route, "signed_in", False):
                apply_security(operation, method)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas[SCHEMA_NAME] = PROBLEM_SCHEMA
    document["components"]["examples"] = dict(sorted(examples.items()))
    document["components"]["headers"] = HEADERS
    declare_schemes(document)
    refuse_nul(document)
    return document


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
