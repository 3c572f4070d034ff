"""Keyset cursors: they round-trip, and anything else is a clear 400."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from backline import pagination
from backline.errors import BadRequest


def test_a_cursor_round_trips() -> None:
    moment, row = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC), uuid.uuid4()
    assert pagination.decode(pagination.encode(moment, row)) == (moment, row)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        base64.urlsafe_b64encode(b"2024-01-01T00:00:00|" + str(uuid.UUID(int=7)).encode()).decode(),
        base64.urlsafe_b64encode(b"2024-01-01T00:00:00+00:00|not-a-uuid").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "",
    ],
)
def test_foreign_cursors_are_400(cursor: str) -> None:
    with pytest.raises(BadRequest) as refused:
        pagination.decode(cursor)
    assert refused.value.code == "invalid_cursor"
