"""The `tracks` table: a track's metadata, its audio object, and where it is in review.

Status: draft -> submitted -> in_review -> approved | rejected (with a reason). Only drafts and
rejected tracks may be edited. The audio object is described by its key, size, SHA-256 and
what parsing found (format, duration, sample rate, channels, bitrate). A track outlives its
owner's account, detached (`owner_id` NULL), once it has been submitted.

Each object also records the backend that holds it (`local` or `s3`), so `backline storage
migrate` can move objects one at a time while the app keeps serving them.

An upload in progress is described by the `upload_*` columns. `upload_state` is:

* `receiving`: a streamed `PUT .../audio` holds the track (`upload_token`), until
  `upload_expires_at` unless it renews its claim as bytes arrive;
* `awaiting_upload`: a presigned URL was issued for `upload_key`, good until `upload_expires_at`;
* `verifying`: the client said it was done; a worker reads the object back, re-hashes and
  validates it (`upload_expires_at` is then that worker's lease);
* `ready`: the audio counts as uploaded; `failed`: it did not, and `upload_error` says why.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backline.db import Base, IdMixin, TimestampMixin


class TrackStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"


BIG = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's INTEGER is already 64-bit
EDITABLE = frozenset({TrackStatus.DRAFT.value, TrackStatus.REJECTED.value})


class UploadState(enum.StrEnum):
    RECEIVING = "receiving"
    AWAITING_UPLOAD = "awaiting_upload"
    VERIFYING = "verifying"
    READY = "ready"
    FAILED = "failed"


BUSY = frozenset({UploadState.RECEIVING.value, UploadState.VERIFYING.value})
PENDING = BUSY | {UploadState.AWAITING_UPLOAD.value}


class Track(IdMixin, TimestampMixin, Base):
    __tablename__ = "tracks"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'submitted', 'in_review', 'approved', 'rejected')",
            name="status_known",
        ),
        CheckConstraint(
            "upload_state IN ('receiving', 'awaiting_upload', 'verifying', 'ready', 'failed')",
            name="upload_state_known",
        ),
        Index("ix_tracks_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_tracks_status_created_at", "status", "created_at"),
        Index("ix_tracks_upload_state_upload_expires_at", "upload_state", "upload_expires_at"),
    )

    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    primary_artist: Mapped[str | None] = mapped_column(String(200))
    featured_artists: Mapped[list[str]] = mapped_column(JSON, default=list)
    genre: Mapped[str | None] = mapped_column(String(50))
    explicit: Mapped[bool | None] = mapped_column(default=None)
    language: Mapped[str | None] = mapped_column(String(8))
    release_date: Mapped[date | None] = mapped_column(default=None)
    isrc: Mapped[str | None] = mapped_column(String(12))
    credits: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=TrackStatus.DRAFT.value)
    rejection_reason: Mapped[str | None] = mapped_column(String(1000))
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    audio_key: Mapped[str | None] = mapped_column(String(80))
    audio_backend: Mapped[str | None] = mapped_column(String(8))
    audio_size: Mapped[int | None] = mapped_column(BIG)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    audio_format: Mapped[str | None] = mapped_column(String(8))
    audio_duration: Mapped[float | None] = mapped_column(Float)
    audio_sample_rate: Mapped[int | None] = mapped_column(Integer)
    audio_channels: Mapped[int | None] = mapped_column(Integer)
    audio_bitrate: Mapped[int | None] = mapped_column(Integer)

    artwork_key: Mapped[str | None] = mapped_column(String(80))
    artwork_backend: Mapped[str | None] = mapped_column(String(8))
    artwork_size: Mapped[int | None] = mapped_column(Integer)
    artwork_sha256: Mapped[str | None] = mapped_column(String(64))
    artwork_format: Mapped[str | None] = mapped_column(String(8))
    artwork_width: Mapped[int | None] = mapped_column(Integer)
    artwork_height: Mapped[int | None] = mapped_column(Integer)

    upload_state: Mapped[str | None] = mapped_column(String(16))
    upload_error: Mapped[str | None] = mapped_column(String(40))
    upload_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    upload_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    upload_key: Mapped[str | None] = mapped_column(String(80))
    upload_backend: Mapped[str | None] = mapped_column(String(8))
    upload_size: Mapped[int | None] = mapped_column(BIG)
    upload_sha256: Mapped[str | None] = mapped_column(String(64))
    upload_content_type: Mapped[str | None] = mapped_column(String(40))
