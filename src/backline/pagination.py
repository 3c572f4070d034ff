"""Keyset pagination: an opaque cursor naming the last row of a page.

A cursor is the (created_at, id) of the last row returned, base64url-encoded; the next page is
every row strictly older in that order (`older_than`), or strictly newer for a list read
oldest first (`newer_than`). Unlike an offset, it stays right while rows are added,
and costs one index range scan however deep the page. A cursor this server did not give out is
400 `invalid_cursor`: only the exact text `encode` writes is accepted (a UTC instant and a
canonical id), so no crafted position (an offset that pushes year 1 or 9999 past what a datetime
holds, a date without a zone, stray characters) ever reaches the database.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from backline.errors import BadRequest

Position = tuple[datetime, uuid.UUID]
INVALID_CURSOR = (400, "invalid_cursor")
_CURSOR_RULES: dict[str, Any] = {
    "min_length": 1,
    "max_length": 200,
    "description": "`next_cursor` of the previous page",
}

if TYPE_CHECKING:
    from fastapi import Query

    # The query parameter of every paged list: absent for the first page, never empty.
    CursorQuery = Annotated[str | None, Query(**_CURSOR_RULES)]
else:

    def __getattr__(name: str) -> Any:
        """`CursorQuery`, made when a route first names it: it needs FastAPI, which the services
        paging with this module do without when they run in the worker or the command line."""
        if name != "CursorQuery":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from fastapi import Query

        value = globals()[name] = Annotated[str | None, Query(**_CURSOR_RULES)]
        return value


def encode(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode(cursor: str) -> Position:
    invalid = BadRequest("The cursor is not one this endpoint gave out.", code="invalid_cursor")
    try:
        created, _, last = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment, position = datetime.fromisoformat(created), uuid.UUID(last)
    except ValueError:
        raise invalid from None
    if moment.utcoffset() != timedelta(0) or encode(moment, position) != cursor:
        raise invalid
    return moment, position


def older_than(
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    position: Position,
) -> ColumnElement[bool]:
    moment, last = position
    return or_(created_at < moment, and_(created_at == moment, row_id < last))


def newer_than(
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    position: Position,
) -> ColumnElement[bool]:
    moment, last = position
    return or_(created_at > moment, and_(created_at == moment, row_id > last))
