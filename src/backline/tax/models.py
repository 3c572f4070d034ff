"""The `tax_forms` table: each W-9 an artist submitted, the newest one current.

Only what queries need is stored in the clear: the TIN's type and last four digits, the federal
tax classification, the state, when it was signed and which certification text was accepted.
Everything else is sealed (`backline.crypto`): `tin` holds the TIN, `details` the rest of the
form as JSON (names, address, codes, signature, and the signer's IP and user agent).

A new submission supersedes the previous one (`superseded_at`), which is kept for the retention
period (BACKLINE_TAX_RETENTION_YEARS) and then purged (`backline tax purge`). At most one form
per person is current. A deleted account's forms stay until then too, detached (`user_id` NULL).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from backline import encrypted
from backline.db import Base, IdMixin, utcnow


class Classification(enum.StrEnum):
    INDIVIDUAL = "individual"
    C_CORPORATION = "c_corporation"
    S_CORPORATION = "s_corporation"
    PARTNERSHIP = "partnership"
    TRUST_ESTATE = "trust_estate"
    LLC_C = "llc_c"
    LLC_S = "llc_s"
    LLC_P = "llc_p"
    OTHER = "other"


class TinType(enum.StrEnum):
    SSN = "ssn"
    EIN = "ein"


_KNOWN = ", ".join(f"'{c.value}'" for c in Classification)


class TaxForm(IdMixin, Base):
    __tablename__ = "tax_forms"
    __table_args__ = (
        CheckConstraint("tin_type IN ('ssn', 'ein')", name="tin_type_known"),
        CheckConstraint(f"federal_tax_classification IN ({_KNOWN})", name="classification_known"),
        Index("ix_tax_forms_user_id_created_at", "user_id", "created_at"),
    )

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    tin_type: Mapped[str] = mapped_column(String(3))
    tin_last4: Mapped[str] = mapped_column(String(4))
    federal_tax_classification: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(2))
    certification_version: Mapped[str] = mapped_column(String(32))
    tin: Mapped[bytes] = mapped_column(LargeBinary)
    details: Mapped[bytes] = mapped_column(LargeBinary)


# One current form per person: a second concurrent submission fails instead of leaving two.
Index(
    "ix_tax_forms_current",
    TaxForm.user_id,
    unique=True,
    postgresql_where=TaxForm.superseded_at.is_(None),
    sqlite_where=TaxForm.superseded_at.is_(None),
)

ENCRYPTED = ("tin", "details")
encrypted.register(TaxForm.__table__, *ENCRYPTED)  # type: ignore[arg-type]
