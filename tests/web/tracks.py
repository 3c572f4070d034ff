"""Helpers of the track page tests: a draft made, filled and uploaded through the portal."""

from __future__ import annotations

import re

import httpx

from tests.tracks.conftest import cover, wav
from tests.web.pages import ORIGIN, csrf_in

DETAILS = {
    "title": "Low Tide",
    "primary_artist": "Nova",
    "featured_artists": "Mira\nJon",
    "genre": "Synth-pop",
    "explicit": "no",
    "language": "en",
    "release_date": "2027-03-01",
    "isrc": "US-RC1-76-07839",
    "credit_name_0": "Nova",
    "credit_role_0": "writer",
    "credit_split_0": "60",
    "credit_name_1": "Mira",
    "credit_role_1": "producer",
    "credit_split_1": "40",
}


async def start_draft(client: httpx.AsyncClient, title: str = "Low Tide") -> str:
    """A new draft through the tracks page; answers its ID."""
    token = csrf_in((await client.get("/tracks")).text)
    made = await client.post(
        "/tracks", data={"title": title, "csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert made.status_code == 303, made.text
    listed = (await client.get("/tracks")).text
    found = re.findall(r'href="/tracks/([0-9a-f-]{36})"', listed)
    assert found, listed
    return found[0]  # newest first


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, str], **kwargs: object
) -> httpx.Response:
    return await client.post(path, data=data, headers={"Origin": ORIGIN}, **kwargs)  # type: ignore[arg-type]


async def upload(
    client: httpx.AsyncClient, track_id: str, kind: str, body: bytes, *, token: str
) -> httpx.Response:
    """The track page's upload form, posted as a browser does without JavaScript."""
    name = "song.wav" if kind == "audio" else "cover.png"
    return await client.post(
        f"/tracks/{track_id}/{kind}",
        data={"csrf_token": token},
        files={"file": (name, body, "application/octet-stream")},
        headers={"Origin": ORIGIN},
    )


async def complete_track(client: httpx.AsyncClient, title: str = "Low Tide") -> str:
    """A draft with every detail, audio and artwork; answers its ID."""
    track_id = await start_draft(client, title)
    token = csrf_in((await client.get(f"/tracks/{track_id}")).text)
    saved = await post_form(
        client, f"/tracks/{track_id}", {**DETAILS, "title": title, "csrf_token": token}
    )
    assert saved.status_code == 303, saved.text
    assert (await upload(client, track_id, "audio", wav(), token=token)).status_code == 303
    assert (await upload(client, track_id, "artwork", cover(), token=token)).status_code == 303
    return track_id


async def submit(client: httpx.AsyncClient, track_id: str) -> httpx.Response:
    token = csrf_in((await client.get(f"/tracks/{track_id}")).text)
    return await post_form(
        client, f"/tracks/{track_id}/submit", {"csrf_token": token, "back": "track"}
    )
