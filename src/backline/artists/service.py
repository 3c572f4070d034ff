"""The applicant's side of artist applications, callable without HTTP. Functions take a
session and never commit.

Applying is refused (409) to someone who already holds a role above `user`
(`already_artist`), to someone with an application still open (`application_open`), and,
for BACKLINE_ARTIST_REAPPLY_DAYS after a rejection, with `reapply_too_soon` and the moment
it lifts (`reapply_after`). Only a submitted application may be withdrawn; once a reviewer
has claimed it, it waits for their decision. Each change is audited in the transaction that
makes it, and a submission's confirmation email is queued in the outbox in it too.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import Role, User
from backline.artists.models import OPEN, ApplicationStatus, ArtistApplication
from backline.artists.schemas import ApplicationCreate, ApplicationPublic
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import utcnow
from backline.email import service as outbox
from backline.errors import Conflict, NotFound


def reapply_after(application: ArtistApplication, *, days: int) -> datetime | None:
    if application.status != ApplicationStatus.REJECTED.value or application.decided_at is None:
        return None
    return application.decided_at + timedelta(days=days)


def public_fields(application: ArtistApplication) -> dict[str, Any]:
    """The columns `ApplicationPublic` shows, as plain data."""
    shown = (name for name in ApplicationPublic.model_fields if hasattr(application, name))
    return {name: getattr(application, name) for name in shown} | {
        "genres": list(application.genres),
        "links": list(application.links),
        "reapply_after": None,
    }


def public(application: ArtistApplication, *, settings: Settings) -> ApplicationPublic:
    fields = public_fields(application)
    fields["reapply_after"] = reapply_after(application, days=settings.artist_reapply_days)
    return ApplicationPublic.model_validate(fields)


async def _open(session: AsyncSession, user_id: uuid.UUID) -> ArtistApplication | None:
    query = select(ArtistApplication).where(
        ArtistApplication.user_id == user_id, ArtistApplication.status.in_(OPEN)
    )
    return (await session.scalars(query)).first()


async def _cooling_down(session: AsyncSession, *, user_id: uuid.UUID, days: int) -> None:
    last = await session.scalar(
        select(func.max(ArtistApplication.decided_at)).where(
            ArtistApplication.user_id == user_id,
            ArtistApplication.status == ApplicationStatus.REJECTED.value,
        )
    )
    if last is None:
        return
    lifts = last + timedelta(days=days)
    now = utcnow()
    if lifts > now:
        raise Conflict(
            f"A new application is accepted from {lifts.isoformat(timespec='seconds')}.",
            code="reapply_too_soon",
            headers={"Retry-After": str(math.ceil((lifts - now).total_seconds()))},
            reapply_after=lifts.isoformat(),
        )


async def submit(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    data: ApplicationCreate,
    client: ClientInfo | None,
) -> ArtistApplication:
    # The account row is locked for the rest of the transaction: two applications sent at
    # once by the same person are decided one after the other (and approval locks it too).
    await session.get(User, user.id, with_for_update=True, populate_existing=True)
    if user.role != Role.USER.value:
        raise Conflict(
            f"This account already has the {user.role} role.", code="already_artist", role=user.role
        )
    if (current := await _open(session, user.id)) is not None:
        raise Conflict(
            "You already have an application waiting for review.",
            code="application_open",
            application_id=str(current.id),
        )
    await _cooling_down(session, user_id=user.id, days=settings.artist_reapply_days)
    application = ArtistApplication(
        user_id=user.id,
        artist_name=data.artist_name,
        bio=data.bio,
        genres=[genre.value for genre in data.genres],
        country=data.country,
        links=[{"url": str(link.url), "sample": link.sample} for link in data.links],
        status=ApplicationStatus.SUBMITTED.value,
    )
    session.add(application)
    try:
        await session.flush()
    except IntegrityError:  # the partial unique index: another one got in first
        raise Conflict(
            "You already have an application waiting for review.", code="application_open"
        ) from None
    await audit.record(
        session,
        event="artist_application_submitted",
        user_id=user.id,
        client=client,
        application_id=str(application.id),
    )
    await outbox.enqueue(
        session,
        settings=settings,
        template="application_received",
        to_address=user.email,
        to_name=user.display_name,
        context={"artist_name": application.artist_name},
    )
    return application


async def latest(session: AsyncSession, *, user_id: uuid.UUID) -> ArtistApplication:
    query = (
        select(ArtistApplication)
        .where(ArtistApplication.user_id == user_id)
        .order_by(ArtistApplication.created_at.desc(), ArtistApplication.id.desc())
        .limit(1)
    )
    application = (await session.scalars(query)).first()
    if application is None:
        raise NotFound("You have not applied yet.", code="no_application")
    return application


async def withdraw(
    session: AsyncSession, *, user: User, client: ClientInfo | None
) -> ArtistApplication:
    now = utcnow()
    # One conditional UPDATE: a reviewer claiming it at the same moment either comes first
    # (and the withdrawal is refused) or finds it withdrawn.
    result = await session.execute(
        update(ArtistApplication)
        .where(
            ArtistApplication.user_id == user.id,
            ArtistApplication.status == ApplicationStatus.SUBMITTED.value,
        )
        .values(status=ApplicationStatus.WITHDRAWN.value, withdrawn_at=now, updated_at=now)
        .returning(ArtistApplication.id)
        .execution_options(synchronize_session=False)
    )
    withdrawn = result.scalar_one_or_none()
    if withdrawn is None:
        current = await _open(session, user.id)
        if current is None:
            raise NotFound("You have no open application.", code="no_open_application")
        raise Conflict(
            "A reviewer is already looking at your application.", code="not_withdrawable"
        )
    await audit.record(
        session,
        event="artist_application_withdrawn",
        user_id=user.id,
        client=client,
        application_id=str(withdrawn),
    )
    application = await session.get(ArtistApplication, withdrawn, populate_existing=True)
    assert application is not None
    return application


async def export(session: AsyncSession, *, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows: Sequence[ArtistApplication] = (
        await session.scalars(
            select(ArtistApplication)
            .where(ArtistApplication.user_id == user_id)
            .order_by(ArtistApplication.created_at, ArtistApplication.id)
        )
    ).all()
    # The cool-down depends on settings an export does not read; the decision date is there.
    return [
        ApplicationPublic.model_validate(public_fields(row)).model_dump(
            mode="json", exclude={"reapply_after"}
        )
        for row in rows
    ]


async def erase(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    rows = (
        await session.scalars(select(ArtistApplication).where(ArtistApplication.user_id == user_id))
    ).all()
    for row in rows:
        await session.delete(row)
    await session.flush()
    return len(rows)
