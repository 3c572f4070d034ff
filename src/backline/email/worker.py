"""The outbox worker: claims due messages, delivers them, records the outcome.

One loop per process (inline inside `backline serve` in development, or `backline worker`).
Each round claims a batch in a short transaction, delivers the batch concurrently with no
transaction open, then records the outcomes in one more short transaction. A worker that dies
mid-batch leaves its rows `sending` until their lease runs out; then another worker takes them
(at-least-once). Database trouble pauses the loop with a growing delay; it never ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline import tracing
from backline.config import Settings
from backline.email import service
from backline.email.backends import DeliveryError, EmailBackend
from backline.email.models import EmailStatus, OutboxEmail
from backline.logging import get_logger
from backline.metrics import EMAILS

log = get_logger(__name__)


class Worker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: EmailBackend,
        *,
        batch_size: int = 20,
        poll_interval: float = 0.5,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.backend = backend
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # A batch is delivered concurrently, each message bounded by the email timeout: a claim
        # that outlives three such timeouts belongs to a worker that died.
        self.lease = settings.email_timeout * 3 + 5
        self.retry_window = timedelta(hours=settings.email_retry_hours)
        self.keep_bodies = not settings.is_production

    async def run_once(self) -> int:
        """Deliver one batch of due messages; returns how many were attempted."""
        async with self.sessionmaker() as session, session.begin():
            rows = list(await service.claim(session, limit=self.batch_size, lease=self.lease))
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(row) for row in rows))
        async with self.sessionmaker() as session, session.begin():
            for row, failure in zip(rows, outcomes, strict=True):
                await self._record(session, row, failure)
        return len(rows)

    async def drain(self) -> int:
        """Deliver until nothing is due; returns the number of attempts made."""
        total = 0
        while attempted := await self.run_once():
            total += attempted
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, finishing the batch in hand."""
        log.info("outbox_worker_started", backend=self.settings.email_backend)
        pause = self.poll_interval
        while not stop.is_set():
            try:
                attempted = await self.run_once()
                pause = self.poll_interval
            except Exception:
                log.exception("outbox_round_failed")
                attempted = 0
                pause = min(pause * 2, 30.0)
            if attempted == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        log.info("outbox_worker_stopped")

    async def _attempt(self, row: OutboxEmail) -> DeliveryError | None:
        """Try one delivery; the failure, or None once the provider took the message."""
        with structlog.contextvars.bound_contextvars(
            request_id=row.request_id, email_id=str(row.id), template=row.template
        ):
            try:
                with tracing.span("email.deliver"):
                    await asyncio.wait_for(
                        self.backend.send(service.outgoing(row)), self.settings.email_timeout + 1
                    )
            except DeliveryError as exc:
                return exc
            except TimeoutError:
                return DeliveryError("delivery timed out", permanent=False)
            except Exception as exc:
                log.exception("email_backend_error")
                return DeliveryError(f"backend error: {type(exc).__name__}", permanent=False)
            return None

    async def _record(
        self, session: AsyncSession, row: OutboxEmail, failure: DeliveryError | None
    ) -> None:
        with structlog.contextvars.bound_contextvars(
            request_id=row.request_id, email_id=str(row.id), template=row.template
        ):
            if failure is None:
                await service.mark_sent(
                    session, email_id=row.id, attempt=row.attempts, keep_bodies=self.keep_bodies
                )
                EMAILS.labels("sent").inc()
                log.info("email_sent", attempt=row.attempts)
                return
            status = await service.mark_failed(
                session,
                row=row,
                reason=failure.reason,
                permanent=failure.permanent,
                retry_after=failure.retry_after,
                retry_window=self.retry_window,
            )
            outcome = "dead" if status is EmailStatus.DEAD else "retry"
            EMAILS.labels(outcome).inc()
            event = log.error if outcome == "dead" else log.warning
            event(f"email_{outcome}", attempt=row.attempts, reason=failure.reason)
