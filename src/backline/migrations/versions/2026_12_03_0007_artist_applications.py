"""artist applications: a person's request to become an artist, and staff's decision

At most one open (submitted or in review) application per person, held by a partial unique
index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
OPEN = sa.text("status IN ('submitted', 'in_review')")


def upgrade() -> None:
    op.create_table(
        "artist_applications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("artist_name", sa.String(length=100), nullable=False),
        sa.Column("bio", sa.String(length=2000), nullable=False),
        sa.Column("genres", sa.JSON(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rejection_reason", sa.String(length=1000), nullable=True),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("claimed_at", UTC_TIME, nullable=True),
        sa.Column("decided_at", UTC_TIME, nullable=True),
        sa.Column("withdrawn_at", UTC_TIME, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "status IN ('submitted', 'in_review', 'approved', 'rejected', 'withdrawn')",
            name=op.f("ck_artist_applications_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_artist_applications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artist_applications")),
    )
    op.create_index(
        "ix_artist_applications_user_id_created_at",
        "artist_applications",
        ["user_id", "created_at"],
    )
    op.create_index(
        "ix_artist_applications_status_created_at",
        "artist_applications",
        ["status", "created_at"],
    )
    op.create_index(
        "uq_artist_applications_open",
        "artist_applications",
        ["user_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_artist_applications_open", table_name="artist_applications")
    op.drop_index("ix_artist_applications_status_created_at", table_name="artist_applications")
    op.drop_index("ix_artist_applications_user_id_created_at", table_name="artist_applications")
    op.drop_table("artist_applications")
