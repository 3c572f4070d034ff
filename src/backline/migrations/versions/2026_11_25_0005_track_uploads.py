"""track uploads: direct-to-storage upload state, and the backend holding each object

Objects stored before this revision were written by the backend configured at the time; the
upgrade records that backend when `backline migrate` passes it in (BACKLINE_STORAGE_BACKEND).
Run any other way, it leaves the column empty, which the code reads as the primary backend.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's INTEGER is 64-bit
STATES = "'receiving', 'awaiting_upload', 'verifying', 'ready', 'failed'"


COLUMNS = (
    ("audio_backend", sa.String(length=8)),
    ("artwork_backend", sa.String(length=8)),
    ("upload_state", sa.String(length=16)),
    ("upload_error", sa.String(length=40)),
    ("upload_token", sa.Uuid()),
    ("upload_expires_at", UTC_TIME),
    ("upload_key", sa.String(length=80)),
    ("upload_backend", sa.String(length=8)),
    ("upload_size", BIG),
    ("upload_sha256", sa.String(length=64)),
    ("upload_content_type", sa.String(length=40)),
)


def _sqlite() -> bool:
    # SQLite adds and drops plain columns in place; its INTEGER is already 64-bit, and a
    # constraint cannot be added to an existing table without rebuilding it, so there the
    # state check lives in the code alone.
    return bool(op.get_bind().dialect.name == "sqlite")


def upgrade() -> None:
    config = op.get_context().config
    backend = config.attributes.get("storage_backend") if config else None
    for name, type_ in COLUMNS:
        op.add_column("tracks", sa.Column(name, type_, nullable=True))
    if not _sqlite():
        op.alter_column("tracks", "audio_size", type_=sa.BigInteger(), existing_nullable=True)
        op.create_check_constraint(
            op.f("ck_tracks_upload_state_known"), "tracks", f"upload_state IN ({STATES})"
        )
    op.create_index(
        "ix_tracks_upload_state_upload_expires_at", "tracks", ["upload_state", "upload_expires_at"]
    )
    if backend is None:
        return
    tracks = sa.table(
        "tracks",
        sa.column("audio_key", sa.String),
        sa.column("audio_backend", sa.String),
        sa.column("artwork_key", sa.String),
        sa.column("artwork_backend", sa.String),
    )
    op.execute(tracks.update().where(tracks.c.audio_key.is_not(None)).values(audio_backend=backend))
    op.execute(
        tracks.update().where(tracks.c.artwork_key.is_not(None)).values(artwork_backend=backend)
    )


def downgrade() -> None:
    too_big = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM tracks WHERE audio_size > 2147483647"))
        .scalar()
    )
    if too_big:
        raise RuntimeError(f"{too_big} tracks hold audio over 2 GiB, which 0004 cannot record")
    op.drop_index("ix_tracks_upload_state_upload_expires_at", table_name="tracks")
    if not _sqlite():
        op.drop_constraint(op.f("ck_tracks_upload_state_known"), "tracks", type_="check")
        op.alter_column("tracks", "audio_size", type_=sa.Integer(), existing_nullable=True)
    for name, _ in reversed(COLUMNS):
        op.drop_column("tracks", name)
