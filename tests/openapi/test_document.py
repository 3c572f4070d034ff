"""The OpenAPI document says what the server does: problem responses with their codes, the
security of signed-in operations, upload bodies, and schemas as strict as the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backline.apidoc.__main__ import document
from backline.apidoc.text import NO_NUL

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def codes(operation: dict[str, Any], status: int) -> list[str]:
    content = operation["responses"][str(status)]["content"][PROBLEM]
    enum: list[str] = content["schema"]["allOf"][1]["properties"]["code"]["enum"]
    assert sorted(content["examples"]) == enum
    for code, ref in content["examples"].items():
        assert ref == {"$ref": f"#/components/examples/{status}_{code}"}
    return enum


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def body_schema(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    content = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
    return resolve(doc, content["schema"])


def test_every_error_response_is_a_problem_and_framework_422_is_gone(
    doc: dict[str, Any],
) -> None:
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(doc["components"]["schemas"])
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "request_id"}
    for _, _, operation in operations(doc):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert list(response["content"]) == [PROBLEM], (status, operation["summary"])
        assert "nul_character" in codes(operation, 422)


def test_a_json_body_can_be_malformed_too_large_or_of_another_type(doc: dict[str, Any]) -> None:
    login = doc["paths"]["/api/auth/login"]["post"]
    assert {"malformed_json", "invalid_encoding"} <= set(codes(login, 400))
    assert codes(login, 413) == ["payload_too_large"]
    assert codes(login, 415) == ["unsupported_media_type"]
    assert {"validation_failed", "nul_character"} <= set(codes(login, 422))
    assert codes(login, 429) == ["account_locked", "rate_limited"]
    retry = login["responses"]["429"]["headers"]["Retry-After"]
    assert retry == {"$ref": "#/components/headers/Retry-After"}
    assert "Retry-After" in doc["components"]["headers"]


def test_signed_in_operations_declare_security_and_401_public_ones_neither(
    doc: dict[str, Any],
) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        "backline_access",
    )
    assert (schemes["csrfHeader"]["in"], schemes["csrfHeader"]["name"]) == (
        "header",
        "X-CSRF-Token",
    )
    me = doc["paths"]["/api/me"]
    assert me["get"]["security"] == [{"bearerToken": []}, {"sessionCookie": []}]
    assert me["patch"]["security"] == [{"bearerToken": []}, {"sessionCookie": [], "csrfHeader": []}]
    assert "security" not in doc
    signed_in = [(m, p, op) for m, p, op in operations(doc) if "security" in op]
    assert len(signed_in) >= 27
    for _, _, operation in signed_in:
        assert {"unauthenticated", "invalid_token", "session_revoked"} <= set(codes(operation, 401))
    for path in ("/api/auth/register", "/api/auth/login", "/healthz"):
        assert "security" not in next(iter(doc["paths"][path].values()))
    assert "401" not in doc["paths"]["/api/auth/register"]["post"]["responses"]


def test_routes_document_their_own_codes(doc: dict[str, Any]) -> None:
    tracks = doc["paths"]["/api/tracks/{track_id}"]
    assert {"track_locked", "upload_in_progress"} <= set(codes(tracks["patch"], 409))
    assert codes(doc["paths"]["/api/tracks/{track_id}/audio-url"]["get"], 404) == [
        "no_audio",
        "not_found",
    ]
    assert codes(doc["paths"]["/api/admin/tracks"]["get"], 403) == ["forbidden_role"]
    claim = doc["paths"]["/api/admin/tracks/{track_id}/claim"]["post"]
    assert codes(claim, 403) == ["csrf_failed", "forbidden_role"]
    assert "403" not in doc["paths"]["/api/me"]["get"]["responses"]
    assert "csrf_failed" in codes(doc["paths"]["/api/me"]["patch"], 403)
    assert "invalid_cursor" in codes(doc["paths"]["/api/tracks"]["get"], 400)
    audio = doc["paths"]["/api/tracks/{track_id}/audio"]
    assert codes(audio["put"], 415) == ["not_audio", "unsupported_audio_format"]
    assert {"invalid_digest"} <= set(codes(audio["put"], 400))
    assert {"invalid_form", "missing_file"} <= set(codes(audio["post"], 400))
    assert codes(doc["paths"]["/api/tracks/{track_id}/artwork"]["put"], 415) == ["not_artwork"]
    complete = doc["paths"]["/api/tracks/{track_id}/audio/complete"]["post"]
    assert "upload_not_pending" in codes(complete, 409)
    assert "storage_unavailable" in codes(complete, 503)


def test_upload_bodies_are_declared(doc: dict[str, Any]) -> None:
    audio = doc["paths"]["/api/tracks/{track_id}/audio"]
    raw = audio["put"]["requestBody"]
    assert raw["required"] is True
    assert {"audio/flac", "audio/mpeg", "application/octet-stream"} <= set(raw["content"])
    assert raw["content"]["audio/flac"]["schema"] == {"type": "string", "format": "binary"}
    digest = next(p for p in audio["put"]["parameters"] if p["in"] == "header")
    assert digest["name"] == "Content-Digest"
    assert digest["schema"]["pattern"] == "^sha-256=:[A-Za-z0-9+/]{43}=:$"
    form = audio["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    artwork = doc["paths"]["/api/tracks/{track_id}/artwork"]["put"]["requestBody"]["content"]
    assert {"image/jpeg", "image/png"} <= set(artwork)


def test_schemas_are_as_strict_as_the_server(doc: dict[str, Any]) -> None:
    register = body_schema(doc, "post", "/api/auth/register")["properties"]
    assert register["email"]["format"] == "email"
    assert (register["password"]["minLength"], register["password"]["maxLength"]) == (8, 128)
    assert register["display_name"]["pattern"] == NO_NUL
    upload_url = body_schema(doc, "post", "/api/tracks/{track_id}/upload-url")["properties"]
    assert upload_url["sha256"]["pattern"] == "^([0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$"
    assert body_schema(doc, "patch", "/api/tracks/{track_id}")["minProperties"] == 1
    for path in ("/api/tracks", "/api/auth/sessions", "/api/admin/audit-events"):
        cursor = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "cursor")
        assert cursor["schema"]["anyOf"][0]["minLength"] == 1


def test_the_published_document_is_current(doc: dict[str, Any]) -> None:
    published = json.loads(PUBLISHED.read_text()) if PUBLISHED.exists() else None
    assert published == doc, "docs/openapi.json is stale: run `make openapi`"
