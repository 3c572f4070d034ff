"""tax forms: each W-9 an artist submitted, sealed but for what queries need

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
CURRENT = sa.text("superseded_at IS NULL")
CLASSIFICATIONS = (
    "federal_tax_classification IN ('individual', 'c_corporation', 's_corporation', "
    "'partnership', 'trust_estate', 'llc_c', 'llc_s', 'llc_p', 'other')"
)


def upgrade() -> None:
    op.create_table(
        "tax_forms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("superseded_at", UTC_TIME, nullable=True),
        sa.Column("tin_type", sa.String(length=3), nullable=False),
        sa.Column("tin_last4", sa.String(length=4), nullable=False),
        sa.Column("federal_tax_classification", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("certification_version", sa.String(length=32), nullable=False),
        sa.Column("tin", sa.LargeBinary(), nullable=False),
        sa.Column("details", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("tin_type IN ('ssn', 'ein')", name=op.f("ck_tax_forms_tin_type_known")),
        sa.CheckConstraint(CLASSIFICATIONS, name=op.f("ck_tax_forms_classification_known")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tax_forms_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_forms")),
    )
    op.create_index("ix_tax_forms_user_id_created_at", "tax_forms", ["user_id", "created_at"])
    op.create_index("ix_tax_forms_superseded_at", "tax_forms", ["superseded_at"])
    op.create_index(
        "ix_tax_forms_current",
        "tax_forms",
        ["user_id"],
        unique=True,
        postgresql_where=CURRENT,
        sqlite_where=CURRENT,
    )


def downgrade() -> None:
    op.drop_index("ix_tax_forms_current", table_name="tax_forms")
    op.drop_index("ix_tax_forms_superseded_at", table_name="tax_forms")
    op.drop_index("ix_tax_forms_user_id_created_at", table_name="tax_forms")
    op.drop_table("tax_forms")
