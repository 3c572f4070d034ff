"""The `artist_applications` table: what a person sent when asking to become an artist.

Status: submitted -> in_review -> approved | rejected (with a reason the applicant sees), or
submitted -> withdrawn by the applicant. A person has at most one open application (submitted
or in review); a partial unique index holds that even against two submissions at once.
`reviewer_id` names the staff member who claimed or decided it, by ID only (no foreign key:
the record outlives a reviewer's account, as the audit log does).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from backline.db import Base, IdMixin, TimestampMixin


class ApplicationStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


OPEN = frozenset({ApplicationStatus.SUBMITTED.value, ApplicationStatus.IN_REVIEW.value})
OPEN_SQL = text("status IN ('submitted', 'in_review')")


class ArtistApplication(IdMixin, TimestampMixin, Base):
    __tablename__ = "artist_applications"
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'in_review', 'approved', 'rejected', 'withdrawn')",
            name="status_known",
        ),
        Index("ix_artist_applications_user_id_created_at", "user_id", "created_at"),
        Index("ix_artist_applications_status_created_at", "status", "created_at"),
        Index(
            "uq_artist_applications_open",
            "user_id",
            unique=True,
            postgresql_where=OPEN_SQL,
            sqlite_where=OPEN_SQL,
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    artist_name: Mapped[str] = mapped_column(String(100))
    bio: Mapped[str] = mapped_column(String(2000))
    genres: Mapped[list[str]] = mapped_column(JSON, default=list)
    country: Mapped[str | None] = mapped_column(String(2))
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=ApplicationStatus.SUBMITTED.value)
    rejection_reason: Mapped[str | None] = mapped_column(String(1000))
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)
