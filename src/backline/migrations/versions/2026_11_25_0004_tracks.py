"""tracks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("primary_artist", sa.String(length=200), nullable=True),
        sa.Column("featured_artists", sa.JSON(), nullable=False),
        sa.Column("genre", sa.String(length=50), nullable=True),
        sa.Column("explicit", sa.Boolean(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("isrc", sa.String(length=12), nullable=True),
        sa.Column("credits", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rejection_reason", sa.String(length=1000), nullable=True),
        sa.Column("submitted_at", UTC_TIME, nullable=True),
        sa.Column("reviewed_at", UTC_TIME, nullable=True),
        sa.Column("reviewer_id", sa.Uuid(), nullable=True),
        sa.Column("audio_key", sa.String(length=80), nullable=True),
        sa.Column("audio_size", sa.Integer(), nullable=True),
        sa.Column("audio_sha256", sa.String(length=64), nullable=True),
        sa.Column("audio_format", sa.String(length=8), nullable=True),
        sa.Column("audio_duration", sa.Float(), nullable=True),
        sa.Column("audio_sample_rate", sa.Integer(), nullable=True),
        sa.Column("audio_channels", sa.Integer(), nullable=True),
        sa.Column("audio_bitrate", sa.Integer(), nullable=True),
        sa.Column("artwork_key", sa.String(length=80), nullable=True),
        sa.Column("artwork_size", sa.Integer(), nullable=True),
        sa.Column("artwork_sha256", sa.String(length=64), nullable=True),
        sa.Column("artwork_format", sa.String(length=8), nullable=True),
        sa.Column("artwork_width", sa.Integer(), nullable=True),
        sa.Column("artwork_height", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'in_review', 'approved', 'rejected')",
            name=op.f("ck_tracks_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_tracks_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
    )
    op.create_index("ix_tracks_owner_id_created_at", "tracks", ["owner_id", "created_at"])
    op.create_index("ix_tracks_status_created_at", "tracks", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tracks_status_created_at", table_name="tracks")
    op.drop_index("ix_tracks_owner_id_created_at", table_name="tracks")
    op.drop_table("tracks")
