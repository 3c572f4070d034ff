"""The passkey tables: each account's credentials, and the challenges handed out for them.

* `passkeys`: one row per registered credential: its ID (base64url, unique across accounts),
  its COSE public key, the signature counter last seen, the transports the browser reported,
  a name its owner chose, and when it was made and last used. It goes with its account
  (ON DELETE CASCADE).
* `passkey_challenges`: every challenge the server issued, kept as a SHA-256 digest, for one
  purpose (`register`, `authenticate` or `second_step`), for five minutes, used once. A
  registration challenge names the signed-in account; a sign-in challenge may name the
  account whose address was given (`bound`: an address was given, whether or not it has an
  account). A `second_step` challenge names the account and the sign-in's MFA challenge it
  was issued for (`mfa_challenge_id`): it answers that one alone, with that account's passkey.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from backline.db import Base, IdMixin, utcnow


class Passkey(IdMixin, Base):
    __tablename__ = "passkeys"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str] = mapped_column(String(200), default="")
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class PasskeyChallenge(IdMixin, Base):
    __tablename__ = "passkey_challenges"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('register', 'authenticate', 'second_step')", name="purpose_known"
        ),
    )

    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    bound: Mapped[bool] = mapped_column(default=False)
    mfa_challenge_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mfa_challenges.id", ondelete="CASCADE"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
