"""The tables of second factors and of sign-in challenges.

* `totp_factors`: at most one per account. Its `secret` is sealed with the key ring
  (`backline.crypto`, bound to the row's ID) and re-encrypted by `backline keys rotate`. A row
  with no `confirmed_at` is an enrolment under way: it counts for nothing until a code from the
  authenticator confirms it. `last_step` is the RFC 6238 time step of the last accepted code:
  a code is accepted only for a later step, so no code is good twice.
* `recovery_codes`: ten per account while a factor is active, each stored as a keyed hash
  (`factors.recovery`), each good once (`used_at`).
* `mfa_challenges`: one per password step that needs a second one. The signed challenge token
  names its row; the row says whether it is used, how many codes were tried against it, and
  until when it is good (see `factors.challenge`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from backline import encrypted
from backline.db import Base, IdMixin, utcnow


class TotpFactor(IdMixin, Base):
    __tablename__ = "totp_factors"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RecoveryCode(IdMixin, Base):
    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_id_code_hash", "user_id", "code_hash"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class MfaChallenge(IdMixin, Base):
    __tablename__ = "mfa_challenges"
    __table_args__ = (CheckConstraint("purpose IN ('sign_in', 'enrol')", name="purpose_known"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(default=None)


encrypted.register(TotpFactor.__table__, "secret")  # type: ignore[arg-type]
