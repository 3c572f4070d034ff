"""The `email_outbox` table: one row per message, its state and its delivery history.

States: `pending` (waiting for its next attempt) -> `sending` (claimed by a worker until
`locked_until`) -> `sent` | back to `pending` after a temporary failure | `dead` after a
permanent failure or once the retry window has passed. A `sending` row whose lease expired
(its worker died) is claimed again.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from backline.db import Base, IdMixin, TimestampMixin, utcnow


class EmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


class OutboxEmail(IdMixin, TimestampMixin, Base):
    __tablename__ = "email_outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'dead')", name="status_known"),
        Index("ix_email_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=EmailStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(128))
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


# Sent and dead messages stay on record: the age of the oldest waiting one (reported by
# `/metrics`) is read from this index of the waiting ones alone.
WAITING = text("status IN ('pending', 'sending')")
Index(
    "ix_email_outbox_waiting",
    OutboxEmail.created_at,
    postgresql_where=WAITING,
    sqlite_where=WAITING,
)
