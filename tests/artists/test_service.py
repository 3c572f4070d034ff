"""The rules without HTTP: the cool-down follows BACKLINE_ARTIST_REAPPLY_DAYS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from backline.artists import review
from backline.artists import service as applications
from backline.artists.schemas import ApplicationCreate
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.errors import Conflict
from tests.artists.conftest import APPLICATION


def test_the_cool_down_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLINE_ARTIST_REAPPLY_DAYS", "7")
    assert Settings(_env_file=None).artist_reapply_days == 7  # type: ignore[call-arg]
    assert Settings.model_fields["artist_reapply_days"].default == 30


@pytest.mark.parametrize(("days", "refused"), [(0, False), (1, True)])
async def test_reapplying_after_a_rejection(
    engine: AsyncEngine,
    make_user: Any,
    make_settings: Callable[..., Settings],
    database_url: str,
    days: int,
    refused: bool,
) -> None:
    settings = make_settings(database_url=database_url, artist_reapply_days=days)
    fan = (await make_user("fan@example.com")).user
    staff = (await make_user("staff@example.com", role=Role.STAFF)).user
    data = ApplicationCreate.model_validate(APPLICATION)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        first = await applications.submit(
            session, settings=settings, user=fan, data=data, client=None
        )
        await review.decide(
            session,
            settings=settings,
            application_id=first.id,
            reviewer=staff,
            approve=False,
            reason="Not yet.",
            client=None,
        )
    async with sessions() as session, session.begin():
        if refused:
            with pytest.raises(Conflict) as caught:
                await applications.submit(
                    session, settings=settings, user=fan, data=data, client=None
                )
            assert caught.value.code == "reapply_too_soon"
        else:
            again = await applications.submit(
                session, settings=settings, user=fan, data=data, client=None
            )
            assert again.id != first.id
