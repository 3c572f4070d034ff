"""Dependency aliases for routes: `SessionDep`, `Sessions`, `EnginesDep`, `SettingsDep`,
`StoragesDep`, `HttpClientDep`.

`SessionDep` opens one transaction per request-handling function: it commits when the function
returns and rolls back when it raises, before the response is sent, so a client never sees a
success for a change that was not stored. GET and HEAD routes only read, and get an autocommit
session instead: no BEGIN and COMMIT round trips, which are a third of a small read's cost.

`Sessions` is for the few routes that run for minutes (streamed uploads): they must not hold a
connection and a transaction that long, so they open their own short ones, each one operation.
`EnginesDep` is for the hot routes that run Core statements on connections of their own,
without a session: sign-in (it reads, hashes with no connection held, then writes; see
`accounts.signin`) and `GET /api/me`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.config import Settings
from backline.db import Engines
from backline.storage import Storages

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    if request.method in READ_ONLY_METHODS:  # no BEGIN and COMMIT round trips for a read
        async with request.app.state.read_sessionmaker() as session:
            yield session
        return
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session


# The getters below are `async def` though they await nothing: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop (and a wake-up of the loop) per request.


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def _engines(request: Request) -> Engines:
    engines: Engines = request.app.state.engines
    return engines


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _storages(request: Request) -> Storages:
    storages: Storages = request.app.state.storages
    return storages


async def _http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http
    return client


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
EnginesDep = Annotated[Engines, Depends(_engines)]
SettingsDep = Annotated[Settings, Depends(_settings)]
StoragesDep = Annotated[Storages, Depends(_storages)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(_http_client)]
