"""Structured logs: JSON in production, readable in development, and secrets never written."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog

from backline import logging as backline_logging
from backline.config import Settings
from backline.logging import (
    MASK,
    Redactor,
    configure_logging,
    get_logger,
    is_sensitive_key,
    write_event,
)
from tests.conftest import LogCapture

SECRET_KEY = "signing-key-that-is-long-enough-0123456789"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXBhcnQ"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(secret_key=SECRET_KEY, smtp_password="smtp-Pa55word!")


async def test_each_secret_kind_is_masked_in_request_logs(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    fields = {
        "password": "hunter2-password",
        "new_password": "another-pass-99",
        "access_token": "tok-access-123",
        "refresh_token": "tok-refresh-456",
        "headers": {
            "Authorization": "Bearer bearer-secret-789",
            "Cookie": "session=cookie-secret-000",
            "Accept": "application/json",
        },
        "raw_headers": [["authorization", "Basic YmFzaWMtc2VjcmV0"], ["x-ok", "visible-value"]],
        "tin": "123456789",
        "form": {"ssn": "987-65-4321", "ein_number": "12-3456789"},
        "api_key": "re_api_key_zzz",
        "note": f"header was Bearer inline-bearer-1 and jwt {JWT}",
        "tax": "the person's SSN is 123-45-6789 and EIN 98-7654321",
        "dsn": "postgresql://backline:db-password-xyz@db:5432/backline",
        "query": "token=query-token-abc&page=2",
        "config_dump": f"key is {SECRET_KEY} and smtp is smtp-Pa55word!",
    }
    response = await client.post("/test/log", json=fields)
    assert response.status_code == 200

    text = logs.text
    for secret in (
        "hunter2-password",
        "another-pass-99",
        "tok-access-123",
        "tok-refresh-456",
        "bearer-secret-789",
        "cookie-secret-000",
        "YmFzaWMtc2VjcmV0",
        "123456789",
        "987-65-4321",
        "12-3456789",
        "re_api_key_zzz",
        "inline-bearer-1",
        JWT,
        "123-45-6789",
        "98-7654321",
        "db-password-xyz",
        "query-token-abc",
        SECRET_KEY,
        "smtp-Pa55word!",
    ):
        assert secret not in text, secret

    [event] = logs.named("probe_event")
    assert event["password"] == MASK
    assert event["headers"]["Authorization"] == MASK
    assert event["headers"]["Accept"] == "application/json"
    assert event["raw_headers"][1] == ["x-ok", "visible-value"]
    assert event["query"] == f"token={MASK}&page=2"
    assert event["request_id"] == response.headers["x-request-id"]


async def test_unhandled_exception_is_logged_with_request_id_and_redacted(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    [event] = logs.named("unhandled_exception")
    assert event["request_id"] == "boom-1"
    assert "RuntimeError" in event["exception"]
    assert "Traceback" in event["exception"]
    assert "hunter2hunter2" not in logs.text


def test_production_logs_are_json_and_development_logs_are_readable(
    make_settings: Callable[..., Settings],
) -> None:
    stream = io.StringIO()
    configure_logging(make_settings(log_format=None, env="production"), stream=stream)
    get_logger("t").info("hello", answer=42)
    line = json.loads(stream.getvalue().strip())
    assert line["event"] == "hello"
    assert line["answer"] == 42
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")

    stream = io.StringIO()
    configure_logging(make_settings(log_format=None, env="development"), stream=stream)
    get_logger("t").info("hello", answer=42)
    text = stream.getvalue()
    assert "hello" in text
    assert "answer=42" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_standard_library_records_pass_through_redaction(
    make_settings: Callable[..., Settings],
) -> None:
    import logging

    stream = io.StringIO()
    configure_logging(make_settings(secret_key=SECRET_KEY), stream=stream)
    logging.getLogger("some.library").warning("connecting with %s", SECRET_KEY)
    line = json.loads(stream.getvalue().strip())
    assert line["event"] == f"connecting with {MASK}"
    assert line["logger"] == "some.library"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "user_password",
        "refreshToken",
        "X-API-Key",
        "set-cookie",
        "tin",
        "client_secret",
        "csrf_token",
        "signature",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key", ["setting", "waiting", "destination", "continent", "einstein", "tinted"]
)
def test_ordinary_keys_are_not_masked(key: str) -> None:
    assert not is_sensitive_key(key)


def test_redactor_handles_nested_shapes_and_registered_values() -> None:
    redact = Redactor(["registered-secret-1"])
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "items": [{"password": "p"}, ("cookie", "c"), "registered-secret-1 inside"],
            "count": 3,
            "flag": True,
            "blob": b"Bearer abcdef",
        },
    )
    assert event["items"][0] == {"password": MASK}
    assert event["items"][1] == ["cookie", MASK]
    assert event["items"][2] == f"{MASK} inside"
    assert event["count"] == 3
    assert event["flag"] is True
    assert event["blob"] == f"Bearer {MASK}"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("refresh_token=r-tok-1&next=/", "r-tok-1"),
        ("client_secret=c-sec-1", "c-sec-1"),
        ("Authorization: Token t-hdr-1", "t-hdr-1"),
        ("Cookie: session=s-cookie-1; theme=dark", "s-cookie-1"),
        ('{"new_password": "j-pw-1", "ok": 1}', "j-pw-1"),
        ("User(password='r-pw-1')", "r-pw-1"),
    ],
)
def test_secrets_inside_free_text_are_masked(text: str, secret: str) -> None:
    scrubbed = Redactor().scrub_text(text)
    assert secret not in scrubbed
    assert MASK in scrubbed


def test_numbers_under_sensitive_keys_are_masked() -> None:
    event = Redactor()(None, "info", {"tin": 123456789, "otp": 123456, "count": 3})
    assert event == {"tin": MASK, "otp": MASK, "count": 3}


async def test_debug_level_never_logs_sql_parameters(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    from backline.accounts import service as accounts
    from backline.db import create_engine, create_sessionmaker

    stream = io.StringIO()
    settings = make_settings(database_url=database_url, log_level="DEBUG")
    configure_logging(settings, stream=stream)
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await accounts.create(
            session, email="dbg@example.com", password="debug passphrase", display_name="D"
        )
    await engine.dispose()
    assert user.password_hash not in stream.getvalue()
    assert "$argon2id$" not in stream.getvalue()


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def",
        "proxy-authorization: x",
        "Set-Cookie: a=b",
        '{"passwd": "x"}',
        "api_key=k1&x=1",
        "apikey: 'k2'",
        "postgresql://user:pw-1@db/x",
        JWT,
        "ssn 123-45-6789",
        "ein 12-3456789",
        "basic dXNlcjpwdw==",
        "the_signature='s'",
        "GET",
        "/api/tracks/{track_id}",
        "2026-12-03T09:48:19.146199Z",
        "3f2a9c0d5e6b4a7c8d9e0f1a2b3c4d5e",
        "0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7",
        "ref-123-45-6789",
        "EIN:12-3456789.",
        "Client_Secret=s",
        "BEARER x",
    ],
)
def test_the_quick_check_never_skips_what_a_pattern_would_mask(text: str) -> None:
    # What the patterns alone make of the text, the redactor makes of it with its quick check.
    by_patterns = text
    for pattern, replacement in backline_logging._PATTERNS:
        by_patterns = pattern.sub(replacement, by_patterns)
    assert Redactor().scrub_text(text) == by_patterns
    if by_patterns != text:
        assert backline_logging.suspect(text)


def test_write_event_writes_what_the_logger_would(make_settings: Callable[..., Settings]) -> None:

    stream = io.StringIO()
    configure_logging(make_settings(log_format="json"), stream=stream)
    structlog.contextvars.bind_contextvars(request_id=JWT, user_id="u-1")
    try:
        fields = {"method": "GET", "route": "/r", "status": 200, "duration_ms": 1.5}
        get_logger("backline.access").info("request", **fields)
        write_event("backline.access", "request", fields, trusted=frozenset({"route"}))
    finally:
        structlog.contextvars.clear_contextvars()
    by_logger, written = (json.loads(line) for line in stream.getvalue().splitlines())
    assert by_logger.pop("timestamp")[:10] == written.pop("timestamp")[:10]
    assert written == by_logger
    assert written["request_id"] == MASK  # a bound value is redacted as any other


def test_write_event_masks_only_the_fields_that_hold_a_secret(
    make_settings: Callable[..., Settings],
) -> None:
    # The quick check runs over the plain fields together; what it finds is then masked field
    # by field, and the others are written as given.
    stream = io.StringIO()
    configure_logging(make_settings(log_format="json", secret_key="k" * 40), stream=stream)
    structlog.contextvars.bind_contextvars(request_id="0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7")
    try:
        fields = {
            "method": "GET",
            "note": "ssn 123-45-6789",
            "echo": "key " + "k" * 40,
            "count": 3,
            "plain": "/api/tracks",
        }
        write_event("backline.access", "request", fields)
    finally:
        structlog.contextvars.clear_contextvars()
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7"
    assert line["note"] == f"ssn {MASK}"
    assert line["echo"] == f"key {MASK}"
    assert (line["method"], line["count"], line["plain"]) == ("GET", 3, "/api/tracks")


def test_lines_carry_an_iso_utc_timestamp_to_the_microsecond(logs: LogCapture) -> None:
    configure_logging(Settings(log_format="json"), stream=logs.stream)
    before = datetime.now(UTC)
    get_logger("t").info("one")
    write_event("t", "two", {})
    after = datetime.now(UTC)
    for line in logs.events:
        stamp = line["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(stamp) <= after


def test_a_value_the_fast_encoder_refuses_is_written_all_the_same(logs: LogCapture) -> None:
    configure_logging(Settings(log_format="json"), stream=logs.stream)
    get_logger("t").info("big", size=2**70, name="Zoë")
    (line,) = logs.named("big")
    assert (line["size"], line["name"]) == (2**70, "Zoë")


def test_a_uuid_whose_last_group_starts_with_digits_is_not_suspect() -> None:
    # Digits that run on into letters are no SSN or EIN: such IDs (one in twenty-seven UUIDs)
    # skip the patterns like any other, and a real number after a hyphen is still caught.
    assert not backline_logging.suspect("0f1e2d3c-4b5a-6978-8091-1234567abcde")
    assert not backline_logging.suspect("0f1e2d3c-4b5a-6978-12-3456ab")
    assert backline_logging.suspect("id-1234567")
    assert backline_logging.suspect("x 123-45-6789.")
