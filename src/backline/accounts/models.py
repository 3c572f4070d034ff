"""The `users` table.

Emails are stored normalized (see `backline.accounts.emails`) and are unique case-insensitively,
enforced by a unique index on `lower(email)` so that no path around the service can create a
second account for `Ann@Example.com`.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from backline.db import Base, IdMixin, TimestampMixin


class Role(enum.StrEnum):
    USER = "user"
    ARTIST = "artist"
    STAFF = "staff"
    ADMIN = "admin"


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

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None


Index("uq_users_email_lower", func.lower(User.email), unique=True)
