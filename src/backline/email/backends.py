"""Email backends, chosen by BACKLINE_EMAIL_BACKEND.

* `console`: prints each message (recipient, subject, text part with its links) to stdout.
* `file`: one RFC 5322 `.eml` file per message in BACKLINE_EMAIL_FILE_DIR, named by the
  message's ID and written atomically, so a retry replaces rather than duplicates.
* `smtp`: aiosmtplib, with STARTTLS or implicit TLS, optional auth and CA bundle.
* `resend`: Resend's HTTP API through the shared HTTP client (so the request ID travels),
  with the message's idempotency key as `Idempotency-Key`.

A backend raises `DeliveryError` when a message was not delivered; `permanent` says whether a
retry could ever help (a rejected recipient, a 4xx from the API) and `retry_after` passes on a
provider's own hint. Every call is bounded by BACKLINE_EMAIL_TIMEOUT.
"""

from __future__ import annotations

import os
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Protocol, TextIO

import anyio.to_thread
import httpx

from backline.config import Settings
from backline.email.message import OutgoingEmail, address, build_mime, message_id, sender_address


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:500]
        self.permanent = permanent
        self.retry_after = retry_after


class EmailBackend(Protocol):
    async def send(self, email: OutgoingEmail) -> None: ...


class ConsoleBackend:
    def __init__(self, settings: Settings, stream: TextIO | None = None) -> None:
        self.settings = settings
        self.stream = stream

    async def send(self, email: OutgoingEmail) -> None:
        stream = self.stream or sys.stdout
        rule = "-" * 72
        stream.write(
            f"{rule}\nEmail to: {email.to_address}\nSubject: {email.subject}\n\n"
            f"{email.text.strip()}\n{rule}\n"
        )
        stream.flush()


class FileBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = settings.effective_email_file_dir

    async def send(self, email: OutgoingEmail) -> None:
        data = build_mime(
            email, sender=self.settings.email_from, domain=self.settings.email_sender_domain
        ).as_bytes()
        await anyio.to_thread.run_sync(self._write, email, data)

    def _write(self, email: OutgoingEmail, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{email.created_at:%Y%m%dT%H%M%S}-{email.id}.eml"
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class SMTPBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tls_context: ssl.SSLContext | None = None
        if settings.smtp_ca_file is not None:
            self.tls_context = ssl.create_default_context(cafile=str(settings.smtp_ca_file))

    async def send(self, email: OutgoingEmail) -> None:
        import aiosmtplib  # imported at the first delivery: only the SMTP backend needs it

        settings = self.settings
        message = build_mime(email, sender=settings.email_from, domain=settings.email_sender_domain)
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=password,
                use_tls=settings.smtp_tls,
                start_tls=False if settings.smtp_tls else settings.smtp_starttls,
                tls_context=self.tls_context,
                timeout=settings.email_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise DeliveryError(
                f"recipient refused: {codes}", permanent=all(code >= 500 for code in codes)
            ) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            # The server's settings are wrong, not the message: keep it until they are fixed.
            raise DeliveryError(
                f"SMTP authentication failed ({exc.code})", permanent=False
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"SMTP unreachable: {type(exc).__name__}", permanent=False
            ) from None


class ResendBackend:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.endpoint = f"{settings.resend_base_url.rstrip('/')}/emails"

    async def send(self, email: OutgoingEmail) -> None:
        settings = self.settings
        assert settings.resend_api_key is not None
        payload = {
            "from": str(sender_address(settings.email_from)),
            "to": [str(address(email.to_address, email.to_name))],
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "headers": {
                "Message-ID": message_id(email.idempotency_key, settings.email_sender_domain)
            },
        }
        headers = {
            "Authorization": f"Bearer {settings.resend_api_key.get_secret_value()}",
            "Idempotency-Key": email.idempotency_key,
        }
        try:
            response = await self.http.post(
                self.endpoint, json=payload, headers=headers, timeout=settings.email_timeout
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"Resend unreachable: {type(exc).__name__}", permanent=False
            ) from None
        status = response.status_code
        if status < 300:
            return
        reason = f"Resend {status}: {_error_name(response)}"
        if status == 429 or status >= 500:
            raise DeliveryError(reason, permanent=False, retry_after=_retry_after(response))
        if status == 409 and _error_name(response) == "concurrent_idempotent_requests":
            raise DeliveryError(reason, permanent=False, retry_after=1.0)
        raise DeliveryError(reason, permanent=True)


def _error_name(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("name") or body.get("message") or response.reason_phrase)[:200]
    return response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def create_backend(settings: Settings, http: httpx.AsyncClient) -> EmailBackend:
    match settings.email_backend:
        case "console":
            return ConsoleBackend(settings)
        case "file":
            return FileBackend(settings)
        case "smtp":
            return SMTPBackend(settings)
        case "resend":
            return ResendBackend(settings, http)
