"""Building the RFC 5322 message: headers that cannot be injected, a stable Message-ID.

Header values (display names, subjects) come from users; any line break or control character
in them is turned into a space before the standard library builds the headers, and the
address itself must be a validated address, so no input can add a header. The Message-ID is
derived from the idempotency key, so every retry of one message carries the same ID.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")


def clean_header(value: str, limit: int = 200) -> str:
    """One line of text, safe as a header value."""
    return " ".join(_UNSAFE.sub(" ", value).split())[:limit]


@dataclass(frozen=True)
class OutgoingEmail:
    """What a backend delivers: one outbox row, rendered."""

    id: uuid.UUID
    idempotency_key: str
    to_address: str
    to_name: str | None
    subject: str
    text: str
    html: str
    created_at: datetime


def message_id(idempotency_key: str, domain: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def address(addr_spec: str, display_name: str | None = None) -> Address:
    local, _, domain = addr_spec.partition("@")
    if not local or not domain or _UNSAFE.search(addr_spec) or " " in addr_spec:
        raise ValueError("not a deliverable address")
    return Address(
        display_name=clean_header(display_name or "", 100), username=local, domain=domain
    )


def sender_address(email_from: str) -> Address:
    name, addr_spec = parseaddr(email_from)
    return address(addr_spec, name)


def build_mime(email: OutgoingEmail, *, sender: str, domain: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender_address(sender)
    message["To"] = address(email.to_address, email.to_name)
    message["Subject"] = clean_header(email.subject, 300)
    message["Date"] = format_datetime(email.created_at)
    message["Message-ID"] = message_id(email.idempotency_key, domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message
