"""Staff review of submitted tracks: the queue, claiming, approving, rejecting.

A submitted track waits in the queue; a reviewer may claim it (in_review, with their ID), and
approves or rejects it from either state. A rejection needs a reason, which the artist sees and
is mailed; a rejected track is editable again and can be submitted anew. The owner is emailed
either way, through the outbox, in the same transaction as the decision.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import User
from backline.config import Settings
from backline.db import utcnow
from backline.email import service as outbox
from backline.errors import Conflict, NotFound
from backline.tracks.models import Track, TrackStatus

REVIEWABLE = frozenset({TrackStatus.SUBMITTED.value, TrackStatus.IN_REVIEW.value})


async def reviewable(session: AsyncSession, *, track_id: uuid.UUID) -> Track:
    track = await session.get(Track, track_id, with_for_update=True)
    if track is None:
        raise NotFound("No such track.")
    if track.status not in REVIEWABLE:
        raise Conflict(f"A {track.status} track is not waiting for review.", code="not_reviewable")
    return track


async def claim(session: AsyncSession, *, track: Track, reviewer: User) -> Track:
    track.status = TrackStatus.IN_REVIEW.value
    track.reviewer_id = reviewer.id
    track.updated_at = utcnow()
    await session.flush()
    return track


async def decide(
    session: AsyncSession,
    *,
    settings: Settings,
    track: Track,
    reviewer: User,
    approve: bool,
    reason: str | None = None,
) -> Track:
    moment = utcnow()
    track.status = (TrackStatus.APPROVED if approve else TrackStatus.REJECTED).value
    track.rejection_reason = None if approve else reason
    track.reviewer_id = reviewer.id
    track.reviewed_at = moment
    track.updated_at = moment
    owner = await session.get(User, track.owner_id) if track.owner_id else None
    if owner is not None:
        context = {"title": track.title} | ({} if approve else {"reason": reason or ""})
        await outbox.enqueue(
            session,
            settings=settings,
            template="track_approved" if approve else "track_rejected",
            to_address=owner.email,
            to_name=owner.display_name,
            context=context,
        )
    await session.flush()
    return track
