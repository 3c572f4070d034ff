"""outbox waiting: an index of the messages not yet delivered, by age

`/metrics` reports the age of the oldest message waiting in the outbox at every scrape. Sent
and dead messages stay on record, so the table grows with every email; this partial index holds
only the waiting ones (pending or being sent), and the oldest is its first entry.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    op.create_index(
        "ix_email_outbox_waiting",
        "email_outbox",
        ["created_at"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_email_outbox_waiting", table_name="email_outbox")
