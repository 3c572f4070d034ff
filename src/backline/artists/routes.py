"""Artist application endpoints: `/api/artist-applications` for the applicant, and
`/api/admin/artist-applications` for staff (admins included)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, status

from backline import pagination
from backline.accounts.deps import CurrentUser, RequireRole
from backline.apidoc.declare import raises
from backline.artists import review
from backline.artists import service as applications
from backline.artists.models import ApplicationStatus
from backline.artists.schemas import (
    ApplicationCreate,
    ApplicationPage,
    ApplicationPublic,
    ApplicationReview,
    RejectRequest,
)
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import NotFound
from backline.routing import router

applicant_router = router(prefix="/api/artist-applications", tags=["artists"])
review_router = router(
    prefix="/api/admin/artist-applications",
    tags=["review"],
    dependencies=[RequireRole("staff")],
)


@applicant_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
)
@raises((409, "already_artist"), (409, "application_open"), (409, "reapply_too_soon"))
async def apply(
    body: ApplicationCreate,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> ApplicationPublic:
    application = await applications.submit(
        session, settings=settings, user=user, data=body, client=client_info(request)
    )
    return applications.public(application, settings=settings)


@applicant_router.get("/me", summary="The signed-in person's latest application")
@raises((404, "no_application"))
async def my_application(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ApplicationPublic:
    application = await applications.latest(session, user_id=user.id)
    return applications.public(application, settings=settings)


@applicant_router.post("/me/withdraw", summary="Withdraw an application not yet claimed")
@raises((404, "no_open_application"), (409, "not_withdrawable"))
async def withdraw(
    user: CurrentUser, request: Request, session: SessionDep, settings: SettingsDep
) -> ApplicationPublic:
    application = await applications.withdraw(session, user=user, client=client_info(request))
    return applications.public(application, settings=settings)


@review_router.get("", summary="The review queue: oldest first")
@raises(pagination.INVALID_CURSOR)
async def review_queue(
    session: SessionDep,
    settings: SettingsDep,
    status_filter: Annotated[
        ApplicationStatus, Query(alias="status", description="default: submitted")
    ] = ApplicationStatus.SUBMITTED,
    q: Annotated[
        str | None, Query(max_length=100, description="in the artist name or the email")
    ] = None,
    cursor: pagination.CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ApplicationPage:
    rows, next_cursor = await review.queue(
        session,
        status=status_filter.value,
        text=q.strip() if q else None,
        cursor=cursor,
        limit=limit,
    )
    items = [review.view(found, applicant, settings=settings) for found, applicant in rows]
    return ApplicationPage(items=items, next_cursor=next_cursor)


@review_router.get("/{application_id}")
@raises(NotFound)
async def get_application(
    application_id: uuid.UUID, session: SessionDep, settings: SettingsDep
) -> ApplicationReview:
    application, applicant = await review.get(session, application_id=application_id)
    return review.view(application, applicant, settings=settings)


@review_router.post("/{application_id}/claim")
@raises(NotFound, (409, "already_claimed"), (409, "already_decided"))
async def claim(
    application_id: uuid.UUID,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> ApplicationReview:
    application, applicant = await review.claim(
        session, application_id=application_id, reviewer=user, client=client_info(request)
    )
    return review.view(application, applicant, settings=settings)


@review_router.post("/{application_id}/approve")
@raises(NotFound, (409, "already_claimed"), (409, "already_decided"))
async def approve(
    application_id: uuid.UUID,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> ApplicationReview:
    application, applicant = await review.decide(
        session,
        settings=settings,
        application_id=application_id,
        reviewer=user,
        approve=True,
        client=client_info(request),
    )
    return review.view(application, applicant, settings=settings)


@review_router.post("/{application_id}/reject")
@raises(NotFound, (409, "already_claimed"), (409, "already_decided"))
async def reject(
    application_id: uuid.UUID,
    body: RejectRequest,
    user: CurrentUser,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> ApplicationReview:
    application, applicant = await review.decide(
        session,
        settings=settings,
        application_id=application_id,
        reviewer=user,
        approve=False,
        reason=body.reason,
        client=client_info(request),
    )
    return review.view(application, applicant, settings=settings)
