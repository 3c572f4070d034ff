"""Staff review of artist applications: the queue, claiming, approving, rejecting.

A submitted application waits in the queue, oldest first; a reviewer claims it (in_review,
with their ID) and approves or rejects it, from either state. Every transition is one
conditional UPDATE on the application's status, so of two reviewers deciding at once exactly
one wins and the other gets 409 `already_decided`. Approval makes the applicant an artist in
the same transaction; roles are read from the database on every request, so the applicant's
current access tokens carry the new rights at once. The applicant is emailed the decision,
and each transition is audited with the reviewer and the request ID.
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import Role, User
from backline.artists.models import OPEN, ApplicationStatus, ArtistApplication
from backline.artists.schemas import ApplicationReview
from backline.artists.service import public_fields, reapply_after
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import utcnow
from backline.email import service as outbox
from backline.errors import Conflict, NotFound
from backline.pagination import decode, encode, newer_than

Reviewed = tuple[ArtistApplication, User]


def view(
    application: ArtistApplication, applicant: User, *, settings: Settings
) -> ApplicationReview:
    fields = public_fields(application) | {
        "reapply_after": reapply_after(application, days=settings.artist_reapply_days),
        "applicant": {
            "id": applicant.id,
            "email": applicant.email,
            "display_name": applicant.display_name,
            "role": applicant.role,
        },
        "reviewer_id": application.reviewer_id,
        "claimed_at": application.claimed_at,
    }
    return ApplicationReview.model_validate(fields)


async def get(
    session: AsyncSession, *, application_id: uuid.UUID
) -> tuple[ArtistApplication, User]:
    query = (
        select(ArtistApplication, User)
        .join(User, User.id == ArtistApplication.user_id)
        .where(ArtistApplication.id == application_id)
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(query)).first()
    if found is None:
        raise NotFound("No such application.")
    return found[0], found[1]


async def queue(
    session: AsyncSession,
    *,
    status: str,
    text: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[builtins.list[Reviewed], str | None]:
    """Applications in `status`, oldest first, optionally those whose artist name or
    applicant's email contains `text` (case-insensitively, wildcards taken literally)."""
    query = (
        select(ArtistApplication, User)
        .join(User, User.id == ArtistApplication.user_id)
        .where(ArtistApplication.status == status)
    )
    if text:
        needle = text.lower()
        query = query.where(
            or_(
                ArtistApplication.artist_name.icontains(needle, autoescape=True),
                User.email.icontains(needle, autoescape=True),
            )
        )
    if cursor is not None:
        query = query.where(
            newer_than(ArtistApplication.created_at, ArtistApplication.id, decode(cursor))
        )
    query = query.order_by(ArtistApplication.created_at, ArtistApplication.id).limit(limit + 1)
    rows: builtins.list[Reviewed] = [(row[0], row[1]) for row in await session.execute(query)]
    page = rows[:limit]
    last = page[-1][0] if page else None
    more = len(rows) > limit and last is not None
    return page, encode(last.created_at, last.id) if more and last is not None else None


async def _moved(
    session: AsyncSession, *, application_id: uuid.UUID, states: frozenset[str], **values: Any
) -> bool:
    result = await session.execute(
        update(ArtistApplication)
        .where(ArtistApplication.id == application_id, ArtistApplication.status.in_(states))
        .values(updated_at=utcnow(), **values)
        .returning(ArtistApplication.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def claim(
    session: AsyncSession,
    *,
    application_id: uuid.UUID,
    reviewer: User,
    client: ClientInfo | None,
) -> tuple[ArtistApplication, User]:
    moved = await _moved(
        session,
        application_id=application_id,
        states=frozenset({ApplicationStatus.SUBMITTED.value}),
        status=ApplicationStatus.IN_REVIEW.value,
        reviewer_id=reviewer.id,
        claimed_at=utcnow(),
    )
    application, applicant = await get(session, application_id=application_id)
    if not moved:
        if application.status == ApplicationStatus.IN_REVIEW.value:
            if application.reviewer_id == reviewer.id:
                return application, applicant  # claiming again changes nothing
            raise Conflict(
                "Another reviewer has claimed this application.",
                code="already_claimed",
                reviewer_id=str(application.reviewer_id),
            )
        raise Conflict(
            f"A {application.status} application is not waiting for review.",
            code="already_decided",
            application_status=application.status,
        )
    await audit.record(
        session,
        event="artist_application_claimed",
        user_id=applicant.id,
        actor_id=reviewer.id,
        client=client,
        application_id=str(application.id),
    )
    return application, applicant


async def decide(
    session: AsyncSession,
    *,
    settings: Settings,
    application_id: uuid.UUID,
    reviewer: User,
    approve: bool,
    reason: str | None = None,
    client: ClientInfo | None,
) -> tuple[ArtistApplication, User]:
    status = ApplicationStatus.APPROVED if approve else ApplicationStatus.REJECTED
    moved = await _moved(
        session,
        application_id=application_id,
        states=OPEN,
        status=status.value,
        rejection_reason=None if approve else reason,
        reviewer_id=reviewer.id,
        decided_at=utcnow(),
    )
    application, applicant = await get(session, application_id=application_id)
    if not moved:
        raise Conflict(
            f"This application was already {application.status}.",
            code="already_decided",
            application_status=application.status,
        )
    details: dict[str, Any] = {"application_id": str(application.id)}
    if approve and applicant.role == Role.USER.value:  # staff promoted meanwhile keep their role
        await session.refresh(applicant, with_for_update=True)
        if applicant.role == Role.USER.value:
            applicant.role = Role.ARTIST.value
            applicant.updated_at = utcnow()
            details |= {"role_before": Role.USER.value, "role_after": Role.ARTIST.value}
    await session.flush()
    await audit.record(
        session,
        event=f"artist_application_{status.value}",
        user_id=applicant.id,
        actor_id=reviewer.id,
        client=client,
        **details,
    )
    context = {"artist_name": application.artist_name}
    if not approve:
        lifts = reapply_after(application, days=settings.artist_reapply_days)
        context |= {"reason": reason or "", "reapply_after": f"{lifts:%Y-%m-%d}" if lifts else ""}
    await outbox.enqueue(
        session,
        settings=settings,
        template=f"application_{status.value}",
        to_address=applicant.email,
        to_name=applicant.display_name,
        context=context,
    )
    return application, applicant
