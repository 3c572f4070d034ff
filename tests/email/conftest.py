"""Real mail peers for the email tests: an aiosmtpd server and a Resend stand-in, on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from backline.config import Settings
from backline.db import create_engine, create_sessionmaker
from backline.email.backends import create_backend
from backline.email.worker import Worker
from backline.httpclient import create_http_client
from tests.conftest import free_port

SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-pass-never-logged"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SMTPSink:
    """An SMTP server the test controls: stop it, start it again on the same port."""

    port: int
    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    require_auth: bool = False
    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.require_auth:
            kwargs.update(
                authenticator=self._authenticate,
                # aiosmtpd counts only STARTTLS as TLS, not a connection made over TLS.
                auth_require_tls=self.tls_context is not None and not self.implicit_tls,
                auth_required=True,
            )
        if self.tls_context is not None and self.implicit_tls:
            kwargs.update(ssl_context=self.tls_context)
        elif self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context, require_starttls=True)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def by_message_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.received:
            key = str(item.message["Message-ID"])
            counts[key] = counts.get(key, 0) + 1
        return counts


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    sink = SMTPSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=["starttls", "implicit"])
def smtp_tls_sink(
    request: pytest.FixtureRequest, smtp_ca: trustme.CA, tmp_path: Path
) -> Iterator[tuple[SMTPSink, Path]]:
    """A server with a certificate from a private CA, speaking STARTTLS or implicit TLS."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    smtp_ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(ca_file))
    sink = SMTPSink(
        port=free_port(),
        tls_context=server_context,
        implicit_tls=request.param == "implicit",
        require_auth=True,
    )
    sink.start()
    yield sink, ca_file
    sink.stop()


# ----------------------------------------------------------------------------- Resend stand-in


@dataclass
class ResendCall:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ResendStub:
    """A loopback HTTP server standing in for Resend: records calls, answers as told.

    `answers` is consumed one per call (then the last repeats): an int status, or "hang".
    """

    def __init__(self) -> None:
        self.calls: list[ResendCall] = []
        self.answers: list[int | str] = [200]
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.calls.append(ResendCall(self.path, dict(self.headers.items()), body))
                answer = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                if answer == "hang":
                    stub.release.wait(timeout=10)  # bounded: the test ends it sooner
                    return
                assert isinstance(answer, int)
                payload: dict[str, Any] = (
                    {"id": f"re_{len(stub.calls)}"}
                    if answer < 300
                    else {"name": "validation_error" if answer == 422 else "error", "message": "no"}
                )
                data = json.dumps(payload).encode()
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if answer == 429:
                    self.send_header("Retry-After", "120")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def resend_stub() -> Iterator[ResendStub]:
    stub = ResendStub()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.release.set()
    stub.server.shutdown()
    stub.server.server_close()
    thread.join(timeout=5)


# ----------------------------------------------------------------------------- worker


@pytest.fixture
async def make_worker() -> AsyncIterator[Callable[..., Worker]]:
    """Build a worker on its own engine and HTTP client; cleaned up after the test."""
    closers: list[Any] = []

    def make(settings: Settings, **kwargs: Any) -> Worker:
        engine = create_engine(settings)
        http = create_http_client(settings.http_timeout)
        closers.append((engine, http))
        return Worker(
            settings, create_sessionmaker(engine), create_backend(settings, http), **kwargs
        )

    yield make
    for engine, http in closers:
        await http.aclose()
        await engine.dispose()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
