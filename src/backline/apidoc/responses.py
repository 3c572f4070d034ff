"""Problem responses in the document: the RFC 9457 schema and one response per status.

Each status lists, as an `enum` and as examples, the codes the operation can answer with it,
so a client (and Schemathesis) can check a body's `code` against the document. The examples
are shared, one per status and code, under `components/examples`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backline.apidoc.declare import Problem
from backline.errors import PROBLEM_JSON, problem_type, status_title

SCHEMA_NAME = "Problem"
PROBLEM_REF = {"$ref": f"#/components/schemas/{SCHEMA_NAME}"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": SCHEMA_NAME,
    "description": "RFC 9457 problem details; branch on `code`, `detail` is for people.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "urn:backline:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "errors": {
            "type": "array",
            "description": "validation_failed: each field and the rule it breaks",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "type": {"type": ["string", "null"]},
                    "msg": {"type": ["string", "null"]},
                },
            },
        },
    },
    "additionalProperties": True,
}

_TEXT = {"type": "string"}
HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": {"description": "the Bearer challenge", "schema": _TEXT},
    "Retry-After": {"description": "seconds before a retry can succeed", "schema": _TEXT},
    "RateLimit": {"description": "IETF RateLimit: the route's policies", "schema": _TEXT},
    "RateLimit-Policy": {"description": "IETF RateLimit-Policy", "schema": _TEXT},
}
_HEADERS_OF: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",),
    429: ("Retry-After", "RateLimit", "RateLimit-Policy"),
    503: ("Retry-After",),
}


def example_name(problem: Problem) -> str:
    return f"{problem.status}_{problem.code}"


def example(problem: Problem) -> dict[str, Any]:
    title = status_title(problem.status)
    return {
        "summary": problem.code,
        "value": {
            "type": problem_type(problem.code),
            "title": title,
            "status": problem.status,
            "detail": title,
            "code": problem.code,
            "request_id": "4f1c2e0a9b7d4c3e8a6b5d4c3b2a1f0e",
        },
    }


def problem_response(status: int, codes: Iterable[str]) -> dict[str, Any]:
    ordered = sorted(set(codes))
    schema = {
        "allOf": [
            PROBLEM_REF,
            {"properties": {"status": {"const": status}, "code": {"enum": ordered}}},
        ]
    }
    response: dict[str, Any] = {
        "description": f"{status_title(status)}: {', '.join(ordered)}",
        "content": {
            PROBLEM_JSON: {
                "schema": schema,
                "examples": {
                    code: {"$ref": f"#/components/examples/{example_name(Problem(status, code))}"}
                    for code in ordered
                },
            }
        },
    }
    if status in _HEADERS_OF:
        names = _HEADERS_OF[status]
        response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in names}
    return response


def problem_responses(problems: Iterable[Problem]) -> dict[str, dict[str, Any]]:
    by_status: dict[int, set[str]] = {}
    for problem in problems:
        by_status.setdefault(problem.status, set()).add(problem.code)
    return {
        str(status): problem_response(status, by_status[status]) for status in sorted(by_status)
    }
