"""The console and file backends, and the inline worker inside the app."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from backline.email.backends import ConsoleBackend, FileBackend
from backline.email.message import OutgoingEmail
from tests.email.conftest import ResendStub, SMTPSink


def sample(**overrides: Any) -> OutgoingEmail:
    import uuid

    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "idempotency_key": "key-1",
        "to_address": "ann@example.com",
        "to_name": "Ann",
        "subject": "Confirm your email address",
        "text": "Open http://127.0.0.1:8000/verify-email?token=abc to confirm.",
        "html": "<p>Open <a href='x'>this</a></p>",
        "created_at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return OutgoingEmail(**values)


async def test_console_prints_recipient_subject_and_link(
    make_settings: Callable[..., Settings],
) -> None:
    stream = io.StringIO()
    await ConsoleBackend(make_settings(), stream=stream).send(sample())
    out = stream.getvalue()
    assert "Email to: ann@example.com" in out
    assert "Subject: Confirm your email address" in out
    assert "http://127.0.0.1:8000/verify-email?token=abc" in out


async def test_file_backend_writes_one_eml_per_message_even_when_retried(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(email_backend="file", email_file_dir=tmp_path / "mail")
    backend = FileBackend(settings)
    message = sample()
    await backend.send(message)
    await backend.send(message)  # a retry after a crash
    await backend.send(sample(idempotency_key="key-2"))
    files = sorted((tmp_path / "mail").iterdir())
    assert len(files) == 2
    assert all(f.suffix == ".eml" for f in files)
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] in ("Ann <ann@example.com>",)
    assert parsed["Subject"] == "Confirm your email address"
    assert parsed.get_body(("plain",)) is not None
    assert parsed.get_body(("html",)) is not None


async def test_requests_answer_fast_while_the_provider_hangs(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    resend_stub: ResendStub,
) -> None:
    """With the inline worker busy on a hanging provider, sign-ups still answer at once."""
    resend_stub.answers = ["hang"]
    settings = make_settings(
        database_url=database_url,
        email_backend="resend",
        resend_api_key="re_x",
        resend_base_url=resend_stub.url,
        outbox_worker="inline",
        email_timeout=5,
    )
    app = app_factory(settings)
    async with (
        LifespanManager(app, shutdown_timeout=15),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        timings = []
        for i in range(5):
            began = time.monotonic()
            response = await client.post(
                "/test/signup", json={"email": f"p{i}@example.com", "display_name": "P", "age": 1}
            )
            timings.append(time.monotonic() - began)
            assert response.status_code == 201
        await asyncio.sleep(0.7)  # the worker has picked them up and is waiting on Resend
        assert resend_stub.calls
        assert max(timings) < 1.0
        resend_stub.release.set()


async def test_the_inline_worker_delivers_while_the_app_runs(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    smtp_sink: SMTPSink,
) -> None:
    settings = make_settings(
        database_url=database_url,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_starttls=False,
        outbox_worker="inline",
    )
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post(
            "/test/signup", json={"email": "live@example.com", "display_name": "L", "age": 1}
        )
        assert response.status_code == 201
        deadline = time.monotonic() + 10
        # The SMTP server runs in its own thread: a bounded poll is the plain way to wait.
        while not smtp_sink.received and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    [received] = smtp_sink.received
    assert received.rcpt_tos == ["live@example.com"]
