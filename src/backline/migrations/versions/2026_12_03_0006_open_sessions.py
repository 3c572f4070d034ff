"""open sessions: an index of each account's open sessions by last use

Sign-in ends the least recently used sessions past BACKLINE_MAX_SESSIONS. Ended sessions stay
on record, so an account's rows grow with every sign-in; this partial index holds only the open
ones, and the cap reads no more than those however long the account's history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_auth_sessions_open",
        "auth_sessions",
        ["user_id", "last_used_at"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_auth_sessions_open", table_name="auth_sessions")
