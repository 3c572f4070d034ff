"""OpenID Connect tables: identities linked to accounts, and sign-ins under way.

* `oidc_identities`: one per (provider, subject), unique, linked to one account; deleted with it.
* `oidc_attempts`: a sign-in or link sent to a provider and not yet back. The `state` is kept
  only as its SHA-256 digest, with the nonce and the PKCE verifier, the browser it was started
  from (digest of a cookie value), the intent (sign in, or link to the signed-in account) and a
  short expiry. It is used once: `used_at` is set before the code is exchanged.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backline.db import Base, IdMixin, utcnow


class OidcIdentity(IdMixin, Base):
    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class OidcAttempt(IdMixin, Base):
    __tablename__ = "oidc_attempts"
    __table_args__ = (CheckConstraint("intent IN ('sign_in', 'link')", name="intent_known"),)

    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    intent: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
