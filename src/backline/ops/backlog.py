"""The backlogs `/metrics` reads from the database at each scrape: the email outbox (messages
waiting, by state, and the age of the oldest) and the direct uploads waiting for verification.

They are the database's, not any one process's, so the process answering the scrape reads
them then (however many processes run, and whether or not the workers run inside them). The
cost is bounded whatever the backlog: each count stops at `COUNT_CAP` rows of an index, the
oldest message is the first entry of an index of the waiting ones (`ix_email_outbox_waiting`),
and the whole read is given `TIMEOUT` seconds on one connection. A read that fails is logged
and the scrape answered without these series (their absence is alerted on, see
`ops/prometheus/alerts.yml`), never with an error.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import cast

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import ColumnElement, ScalarSelect, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.db import utcnow
from backline.email.models import EmailStatus, OutboxEmail
from backline.logging import get_logger
from backline.tracks.models import Track, UploadState

log = get_logger(__name__)
COUNT_CAP = 100_000
TIMEOUT = 2.0
WAITING = (EmailStatus.PENDING.value, EmailStatus.SENDING.value)

_outbox = cast(Table, OutboxEmail.__table__)
_tracks = cast(Table, Track.__table__)


def _capped_count(table: Table, where: ColumnElement[bool]) -> ScalarSelect[int]:
    rows = select(table.c.id).where(where).limit(COUNT_CAP).subquery()
    return select(func.count()).select_from(rows).scalar_subquery()


_READ = select(
    _capped_count(_outbox, _outbox.c.status == EmailStatus.PENDING.value),
    _capped_count(_outbox, _outbox.c.status == EmailStatus.SENDING.value),
    select(func.min(_outbox.c.created_at)).where(_outbox.c.status.in_(WAITING)).scalar_subquery(),
    _capped_count(_tracks, _tracks.c.upload_state == UploadState.VERIFYING.value),
)
_LIMIT_STATEMENT = text(f"SET LOCAL statement_timeout = {int(TIMEOUT * 1000)}")


async def read(engine: AsyncEngine) -> list[Metric]:
    """The backlog series as they stand; none when the database does not answer in time."""
    try:
        async with asyncio.timeout(TIMEOUT * 2), engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(_LIMIT_STATEMENT)  # the server gives up first
            pending, sending, oldest, verifying = (await connection.execute(_READ)).one()
    except Exception as exc:
        log.warning("metrics_backlog_unread", error=type(exc).__name__)
        return []
    return families(
        pending=pending, sending=sending, oldest=oldest, verifying=verifying, now=utcnow()
    )


def families(
    *, pending: int, sending: int, oldest: datetime | None, verifying: int, now: datetime
) -> list[Metric]:
    waiting = GaugeMetricFamily(
        "backline_outbox_messages",
        f"Emails waiting in the outbox, by state (each count stops at {COUNT_CAP})",
        labels=["status"],
    )
    waiting.add_metric([EmailStatus.PENDING.value], pending)
    waiting.add_metric([EmailStatus.SENDING.value], sending)
    age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return [
        waiting,
        GaugeMetricFamily(
            "backline_outbox_oldest_waiting_age_seconds",
            "Age of the oldest email not yet delivered (pending or being sent); 0 when none",
            value=age,
        ),
        GaugeMetricFamily(
            "backline_upload_verifications_waiting",
            "Direct uploads completed and waiting for their verification "
            f"(the count stops at {COUNT_CAP})",
            value=verifying,
        ),
    ]
