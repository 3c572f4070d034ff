"""Outbox rules: queue a message inside the caller's transaction, and move rows through states.

`enqueue` renders the message and adds its row to the caller's session: the email exists if and
only if the change that caused it is committed. The other functions are the worker's steps;
each runs in a short transaction of its own and never holds a lock while talking to a provider.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.config import Settings
from backline.context import current_request_id
from backline.db import utcnow
from backline.email.message import OutgoingEmail, address, clean_header
from backline.email.models import EmailStatus, OutboxEmail
from backline.email.templates import render

BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0  # never wait more than an hour between attempts


async def enqueue(
    session: AsyncSession,
    *,
    settings: Settings,
    template: str,
    to_address: str,
    to_name: str | None = None,
    context: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> OutboxEmail:
    """Queue one message; with an `idempotency_key` already queued, return that row instead."""
    if idempotency_key is not None:
        existing = await session.scalar(
            select(OutboxEmail).where(OutboxEmail.idempotency_key == idempotency_key)
        )
        if existing is not None:
            return existing
    address(to_address)  # refuse an undeliverable address now, not in the worker
    rendered = render(template, context or {}, public_url=settings.public_url, display_name=to_name)
    row = OutboxEmail(
        id=uuid.uuid4(),
        idempotency_key=idempotency_key or f"backline-{uuid.uuid4()}",
        template=template,
        to_address=to_address,
        to_name=clean_header(to_name, 100) if to_name else None,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        status=EmailStatus.PENDING.value,
        attempts=0,
        next_attempt_at=utcnow(),
        request_id=current_request_id(),
    )
    session.add(row)
    await session.flush()
    return row


async def claim(session: AsyncSession, *, limit: int, lease: float) -> Sequence[OutboxEmail]:
    """Take up to `limit` due messages for this worker until `lease` seconds from now.

    Due: pending with its attempt time reached, or sending with an expired lease (its worker
    died). On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several workers claim side by side
    without waiting on or taking each other's rows; SQLite serializes writers anyway.
    """
    now = utcnow()
    due = or_(
        and_(
            OutboxEmail.status == EmailStatus.PENDING.value,
            OutboxEmail.next_attempt_at <= now,
        ),
        and_(
            OutboxEmail.status == EmailStatus.SENDING.value,
            OutboxEmail.locked_until < now,
        ),
    )
    candidates = (
        select(OutboxEmail.id)
        .where(due)
        .order_by(OutboxEmail.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(OutboxEmail)
        .where(OutboxEmail.id.in_(candidates))
        .values(
            status=EmailStatus.SENDING.value,
            locked_until=now + timedelta(seconds=lease),
            attempts=OutboxEmail.attempts + 1,
            updated_at=now,
        )
        .returning(OutboxEmail)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).all()


def outgoing(row: OutboxEmail) -> OutgoingEmail:
    return OutgoingEmail(
        id=row.id,
        idempotency_key=row.idempotency_key,
        to_address=row.to_address,
        to_name=row.to_name,
        subject=row.subject,
        text=row.text_body or "",
        html=row.html_body or "",
        created_at=row.created_at,
    )


async def mark_sent(
    session: AsyncSession, *, email_id: uuid.UUID, attempt: int, keep_bodies: bool
) -> bool:
    """Record delivery; False when the row was claimed again meanwhile (lease expired)."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": EmailStatus.SENT.value,
        "sent_at": now,
        "locked_until": None,
        "last_error": None,
        "updated_at": now,
    }
    if not keep_bodies:  # the bodies may hold one-time links: keep none once delivered
        values.update(text_body=None, html_body=None)
    result = await session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.id == email_id,
            OutboxEmail.status == EmailStatus.SENDING.value,
            OutboxEmail.attempts == attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def backoff(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, with jitter.

    "Equal jitter": half the exponential step is fixed, half random, so retries of many
    messages that failed together spread out without any of them retrying at once.
    """
    step: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0, step / 2)
    return step / 2 + jitter


async def mark_failed(
    session: AsyncSession,
    *,
    row: OutboxEmail,
    reason: str,
    permanent: bool,
    retry_after: float | None,
    retry_window: timedelta,
    now: datetime | None = None,
) -> EmailStatus:
    """Schedule the next attempt, or mark the row dead; returns the new status."""
    now = now or utcnow()
    delay = max(backoff(row.attempts), retry_after or 0.0)
    next_attempt = now + timedelta(seconds=delay)
    dead = permanent or next_attempt - row.created_at > retry_window
    status = EmailStatus.DEAD if dead else EmailStatus.PENDING
    await session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.id == row.id,
            OutboxEmail.status == EmailStatus.SENDING.value,
            OutboxEmail.attempts == row.attempts,
        )
        .values(
            status=status.value,
            next_attempt_at=next_attempt,
            locked_until=None,
            last_error=reason[:500],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return status


async def list_recent(session: AsyncSession, *, limit: int = 50) -> Sequence[OutboxEmail]:
    result = await session.scalars(
        select(OutboxEmail).order_by(OutboxEmail.created_at.desc()).limit(limit)
    )
    return result.all()


async def get(session: AsyncSession, *, email_id: uuid.UUID) -> OutboxEmail | None:
    return await session.get(OutboxEmail, email_id)
