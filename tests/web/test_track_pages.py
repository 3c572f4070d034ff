"""The tracks page: drafts for artists only, and what a draft still misses."""

from __future__ import annotations

import re
from typing import Any

import httpx

from backline.accounts.models import Role
from tests.web.pages import ORIGIN, csrf_in, log_in


async def test_only_artists_start_tracks(portal: httpx.AsyncClient, make_user: Any) -> None:
    await make_user()
    await log_in(portal)
    listed = await portal.get("/tracks")
    assert "Tracks open once your artist application is approved" in listed.text
    started = await portal.post(
        "/tracks",
        data={"title": "Mine", "csrf_token": csrf_in(listed.text)},
        headers={"Origin": ORIGIN},
    )
    assert started.status_code == 403
    assert started.json()["code"] == "forbidden_role"


async def test_an_artist_starts_a_draft_and_is_told_what_it_misses(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    token = csrf_in((await portal.get("/tracks")).text)
    empty = await portal.post(
        "/tracks", data={"title": "", "csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert empty.status_code == 422
    assert 'id="title-error"' in empty.text
    made = await portal.post(
        "/tracks", data={"title": "Low Tide", "csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert made.status_code == 303
    listed = (await portal.get("/tracks")).text
    send = re.search(r'action="(/tracks/[0-9a-f-]{36}/submit)"', listed)
    assert send
    refused = await portal.post(
        send.group(1), data={"csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert refused.status_code in (409, 422)
    assert 'role="alert"' in refused.text
    assert "audio" in refused.text
