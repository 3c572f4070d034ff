"""passkey second step: a passkey challenge may be issued for a sign-in's MFA challenge

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_passkey_challenges_purpose_known"  # names as final: op.f() on use
FOREIGN_KEY = "fk_passkey_challenges_mfa_challenge_id_mfa_challenges"
INDEX = "ix_passkey_challenges_mfa_challenge_id"


@contextmanager
def _challenges() -> Iterator[BatchOperations]:
    """The table altered in place (PostgreSQL) or copied anew (SQLite). On SQLite the copy
    reflects the tables it refers to; `users`' index on lower(email) is beyond reflection, and
    the copy needs none of `users`' indexes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table("passkey_challenges") as batch:
            yield batch


def upgrade() -> None:
    with _challenges() as batch:
        batch.add_column(sa.Column("mfa_challenge_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f(FOREIGN_KEY), "mfa_challenges", ["mfa_challenge_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index(op.f(INDEX), ["mfa_challenge_id"])
        batch.drop_constraint(op.f(CHECK), type_="check")
        batch.create_check_constraint(
            op.f(CHECK), "purpose IN ('register', 'authenticate', 'second_step')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM passkey_challenges WHERE purpose = 'second_step'")
    with _challenges() as batch:
        batch.drop_constraint(op.f(CHECK), type_="check")
        batch.create_check_constraint(op.f(CHECK), "purpose IN ('register', 'authenticate')")
        batch.drop_index(op.f(INDEX))
        batch.drop_constraint(op.f(FOREIGN_KEY), type_="foreignkey")
        batch.drop_column("mfa_challenge_id")
