"""What the other domains hold about a person, reached from one place.

Deleting an account and exporting everything held about it (`DELETE /api/me`,
`GET /api/me/export`) must reach every domain: tracks, artist applications, tax forms, chat.
`accounts` sits below them all and imports none of them. Instead each domain adds itself here,
from its own `holdings` module, once, when that module is imported (the application imports
each domain's):

    holdings.register(name="tracks", export=export_tracks, erase=erase_tracks)

* `export(session, user)` returns JSON-ready data, placed under `name` in the export.
* `erase(session, user, storages)` removes (or, where the law wants it kept, detaches) what the
  domain holds, inside the deletion's own transaction, before the user row goes; it may return
  work to run once that transaction has committed, such as deleting stored objects nothing
  points at any more (objects are never deleted before the rows that point at them are gone).

Domains are visited in the order they registered. Registering a name twice with other
functions is a programming error and raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.models import User
from backline.storage import Storages

AfterCommit = Callable[[], Awaitable[None]]
Exporter = Callable[[AsyncSession, User], Awaitable[Any]]
Eraser = Callable[[AsyncSession, User, Storages], Awaitable[AfterCommit | None]]


@dataclass(frozen=True)
class Holder:
    name: str
    export: Exporter
    erase: Eraser


_holders: dict[str, Holder] = {}


def register(*, name: str, export: Exporter, erase: Eraser) -> None:
    holder = Holder(name, export, erase)
    if _holders.setdefault(name, holder) != holder:
        raise ValueError(f"another domain already holds data under {name!r}")


def names() -> list[str]:
    return list(_holders)


async def export(session: AsyncSession, *, user: User) -> dict[str, Any]:
    """Each domain's part of the export, under its name."""
    return {holder.name: await holder.export(session, user) for holder in _holders.values()}


async def erase(session: AsyncSession, *, user: User, storages: Storages) -> list[AfterCommit]:
    """Every domain's erasure, in the caller's transaction; the work to run after its commit."""
    later: list[AfterCommit] = []
    for holder in _holders.values():
        if (after := await holder.erase(session, user, storages)) is not None:
            later.append(after)
    return later
