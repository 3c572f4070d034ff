"""Dependency aliases for routes: `SessionDep`, `SettingsDep`, `HttpClientDep`.

`SessionDep` opens one transaction per request-handling function: it commits when the function
returns and rolls back when it raises, before the response is sent, so a client never sees a
success for a change that was not stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from backline.config import Settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http
    return client


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(_http_client)]
