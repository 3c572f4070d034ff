"""Account tables: users, their sessions, refresh tokens, one-time tokens.

* `users`: emails stored normalized, unique case-insensitively through a unique index on
  `lower(email)`, so no path around the service can create a second account for
  `Ann@Example.com`. (Failed-password state is kept per address in `throttle`.)
* `auth_sessions`: one per login (device); access tokens name their session (`sid`), so
  revoking a session revokes its access tokens too. Open ones are indexed by last use, for the
  cap on sessions per account.
* `refresh_tokens`: opaque, stored as SHA-256 hashes, one family per session. Each use
  rotates: the token is marked used and names its successor.
* `account_tokens`: one-time tokens for email verification, password reset and email change,
  stored as hashes, with expiry and use time.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from backline.accounts.roles import Role as Role
from backline.db import Base, IdMixin, TimestampMixin, utcnow


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('user', 'artist', 'staff', 'admin')",
            name="role_known",
        ),
    )

    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER.value)
    password_hash: Mapped[str] = mapped_column(String(255))
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None


Index("uq_users_email_lower", func.lower(User.email), unique=True)


class AuthSession(IdMixin, Base):
    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


# Ended sessions stay on record: the cap on open sessions (`accounts.sessions`) reads only these.
Index(
    "ix_auth_sessions_open",
    AuthSession.user_id,
    AuthSession.last_used_at,
    postgresql_where=AuthSession.revoked_at.is_(None),
    sqlite_where=AuthSession.revoked_at.is_(None),
)


class RefreshToken(IdMixin, Base):
    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
    CHANGE_EMAIL = "change_email"


class AccountToken(IdMixin, Base):
    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('verify_email', 'reset_password', 'change_email')",
            name="purpose_known",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
