"""Keyset cursors: they round-trip, and anything else is a clear 400."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from backline import pagination
from backline.accounts.models import Role
from backline.config import Settings
from backline.errors import BadRequest
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login


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


# ----------------------------------------------------------------------------- over HTTP


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


ZERO = "00000000-0000-0000-0000-000000000000"
CRAFTED = [
    b64(f"0001-01-01T00:00:00+01:00|{ZERO}"),  # an offset that underflows year 1 in UTC
    b64(f"9999-12-31T23:59:59-01:00|{ZERO}"),  # and one that overflows year 9999
    b64(f"0001-01-01T00:00:00Z|{ZERO}"),
    b64(f"2026-11-25T01:02:03+00:00|{ZERO}|extra"),  # a field too many
    b64("2026-11-25T01:02:03+00:00"),  # a field too few
    b64(f"2026-11-25T01:02:03|{ZERO}"),  # no zone
    b64(f"2026-11-25T01:02:03+00:00|{{{ZERO}}}"),  # an id in another spelling
    "garbage!",
    "x" * 40,
]
LISTS = [
    ("/api/tracks", "artist", {}),
    ("/api/admin/tracks", "staff", {"status": "draft"}),
    ("/api/admin/audit-events", "staff", {}),
]


@pytest.mark.parametrize(("path", "who", "params"), LISTS)
async def test_every_list_refuses_crafted_cursors_and_pages_with_its_own(
    client: httpx.AsyncClient, make_user: Any, path: str, who: str, params: dict[str, str]
) -> None:
    await make_user("artist@example.com", role=Role.ARTIST, display_name="Artist")
    await make_user("staff@example.com", role=Role.STAFF, display_name="Staff")
    people = {
        name: bearer(await login(client, f"{name}@example.com")) for name in ("artist", "staff")
    }
    for title in ("One", "Two", "Three"):
        made = await client.post("/api/tracks", json={"title": title}, headers=people["artist"])
        assert made.status_code == 201, made.text
    headers = people[who]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await client.get(
            path,
            params={**params, "limit": 1, **({"cursor": cursor} if cursor else {})},
            headers=headers,
        )
        assert page.status_code == 200, (path, page.text)
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    whole = await client.get(path, params={**params, "limit": 100}, headers=headers)
    assert seen == [item["id"] for item in whole.json()["items"]]
    assert len(seen) >= 2, path
    own = (await client.get(path, params={**params, "limit": 1}, headers=headers)).json()
    tampered = own["next_cursor"][:-4] + ("AAAA" if own["next_cursor"][-4:] != "AAAA" else "BBBB")
    for crafted in [*CRAFTED, tampered]:
        refused = await client.get(path, params={**params, "cursor": crafted}, headers=headers)
        assert refused.status_code == 400, (path, crafted, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "invalid_cursor"
