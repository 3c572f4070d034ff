"""Sentry error reports: a 500 reaches a stand-in ingest URL with its request ID, and nothing
secret that the request carried or the failure said."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline import errorreports
from backline.app import Backline
from backline.config import Settings
from tests.receivers import Received, Receiver

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZW50cnkifQ.c2VudHJ5LXNpZ25hdHVyZQ"
SECRETS = {
    "password": "sentry-hunter2-pw",
    "refresh_token": "sentry-refresh-tok-77",
    "tin": "123456789",
    "cookie": "session=sentry-cookie-secret",
    "note": f"Bearer sentry-inline-bearer and ssn 123-45-6789 and {JWT}",
}


@pytest.fixture
def ingest() -> Iterator[Receiver]:
    with Receiver().running() as receiver:
        yield receiver


@pytest.fixture
def reporting_settings(
    make_settings: Callable[..., Settings], database_url: str, ingest: Receiver
) -> Iterator[Settings]:
    port = ingest.url.rsplit(":", 1)[1]
    yield make_settings(
        database_url=database_url, sentry_dsn=f"http://publickey1234@127.0.0.1:{port}/42"
    )
    errorreports.configure_error_reports(make_settings())  # reporting off for the next test
    assert not errorreports.enabled()


def _events(received: list[Received]) -> list[dict[str, Any]]:
    events = []
    for request in received:
        for line in request.body.decode().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict) and "exception" in item:
                events.append(item)
    return events


async def test_a_500_is_reported_with_its_request_id_and_no_secret(
    app_factory: Callable[[Settings], Backline], reporting_settings: Settings, ingest: Receiver
) -> None:
    app = app_factory(reporting_settings)
    assert errorreports.enabled()
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/test/explode?access_token=sentry-query-token",
                json=SECRETS,
                headers={
                    "X-Request-ID": "sentry-500-1",
                    "Authorization": f"Bearer {JWT}",
                    "Cookie": SECRETS["cookie"],
                },
            )
    assert response.status_code == 500
    errorreports.flush()
    [event] = ingest.wait_for(_events)
    assert ingest.snapshot()[0].path == "/api/42/envelope/"
    assert event["tags"]["request_id"] == "sentry-500-1"
    assert event["tags"]["event"] == "unhandled_exception"
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["stacktrace"]["frames"]
    crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("message") == "probe_event"]
    assert crumbs
    assert crumbs[0]["data"]["password"] == "[redacted]"
    assert crumbs[0]["data"]["request_id"] == "sentry-500-1"

    sent = b"".join(r.body for r in ingest.snapshot()).decode()
    for secret in (
        "sentry-hunter2-pw",
        "sentry-refresh-tok-77",
        "123456789",
        "sentry-cookie-secret",
        "sentry-inline-bearer",
        "123-45-6789",
        JWT,
        "sentry-query-token",
        "publickey1234",
    ):
        assert secret not in sent, secret


def test_error_reporting_is_not_loaded_without_a_dsn(
    make_settings: Callable[..., Settings],
) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from backline.config import Settings; from backline.app import create_app;"
        "from backline.logging import configure_logging;"
        "s = Settings(env='test'); configure_logging(s); create_app(s);"
        "loaded = [m for m in sys.modules if m.startswith(('sentry_sdk', 'opentelemetry.sdk.trace',"
        " 'opentelemetry.exporter', 'opentelemetry.instrumentation'))];"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    env = {"PATH": "/usr/bin:/bin", "BACKLINE_ENV": "test"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_only_the_named_integrations_are_installed(reporting_settings: Settings) -> None:
    # Sentry patches, process-wide, each library it finds installed unless told not to; its
    # FastAPI patch read every request's form before the route (file parts kept in temporary
    # files), which the portal's forms refuse.
    import sentry_sdk

    assert errorreports.configure_error_reports(reporting_settings)
    assert set(sentry_sdk.get_client().integrations) == {"atexit", "dedupe", "excepthook"}
    errorreports.configure_error_reports(Settings(env="test"))  # reporting stopped
    assert set(sentry_sdk.get_client().integrations) <= {"atexit", "dedupe", "excepthook"}
