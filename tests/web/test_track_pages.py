"""The tracks pages: drafts for artists only; a track's own page with its details, uploads
(without JavaScript, and the choice of direct upload) and what it still misses."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.accounts.models import Role
from backline.app import Backline
from backline.middleware.security import HTML_CSP
from tests.accounts.conftest import GENEROUS_LIMITS
from tests.s3servers import S3Server
from tests.tracks.conftest import cover, wav
from tests.web.pages import FOREIGN, ORIGIN, csrf_in, log_in, new_client
from tests.web.tracks import DETAILS, complete_track, post_form, start_draft, submit, upload


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


async def test_a_track_page_is_its_owners_alone(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await start_draft(portal)
    page = await portal.get(f"/tracks/{track_id}")
    assert page.status_code == 200
    assert "Low Tide" in page.text
    async with new_client(app) as anonymous:
        assert (await anonymous.get(f"/tracks/{track_id}")).headers["location"] == "/login"
    await make_user("bo@example.com", role=Role.ARTIST)
    async with new_client(app) as other:
        await log_in(other, "bo@example.com")
        token = csrf_in((await other.get("/tracks")).text)
        shown = await other.get(f"/tracks/{track_id}", headers={"Accept": "text/html"})
        assert shown.status_code == 404
        assert "Low Tide" not in shown.text
        changed = await post_form(other, f"/tracks/{track_id}", {**DETAILS, "csrf_token": token})
        assert changed.status_code == 404
        sent = await upload(other, track_id, "audio", wav(), token=token)
        assert sent.status_code == 404
        sent = await upload(other, track_id, "artwork", cover(), token=token)
        assert sent.status_code == 404
        submitted = await post_form(
            other, f"/tracks/{track_id}/submit", {"csrf_token": token, "back": "track"}
        )
        assert submitted.status_code == 404
    assert "Nova" not in (await portal.get(f"/tracks/{track_id}")).text  # nothing was changed


@pytest.mark.parametrize(
    ("field", "typed", "error_id"),
    [
        ("title", "", "title-error"),
        ("isrc", "NOT-AN-ISRC", "isrc-error"),
        ("language", "English", "language-error"),
        ("release_date", "next spring", "release_date-error"),
        ("credit_split_1", "forty", "credit_split_1-error"),
        ("credit_split_1", "30", "credits-error"),  # the splits add up to 90
        ("credit_name_1", "", "credit_name_1-error"),
    ],
    ids=["title", "isrc", "language", "date", "split-number", "split-sum", "credit-name"],
)
async def test_the_details_form_shows_each_error_beside_its_field(
    portal: httpx.AsyncClient, make_user: Any, field: str, typed: str, error_id: str
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await start_draft(portal)
    token = csrf_in((await portal.get(f"/tracks/{track_id}")).text)
    form = {**DETAILS, field: typed, "csrf_token": token}
    refused = await post_form(portal, f"/tracks/{track_id}", form)
    assert refused.status_code == 422
    assert f'id="{error_id}"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert 'value="Synth-pop"' in refused.text  # what was typed is kept
    if typed:
        assert f'value="{typed}"' in refused.text
    kept = (await portal.get(f"/tracks/{track_id}")).text
    assert "Synth-pop" not in kept  # nothing of the refused form was saved


async def test_the_details_are_saved_and_what_is_missing_shrinks(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await start_draft(portal)
    before = (await portal.get(f"/tracks/{track_id}")).text
    missing = re.search(r'<ul id="missing">(.*?)</ul>', before, re.S)
    assert missing
    assert "isrc" in missing.group(1)
    assert "credits" in missing.group(1)
    saved = await post_form(
        portal, f"/tracks/{track_id}", {**DETAILS, "csrf_token": csrf_in(before)}
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/tracks/{track_id}?done=saved"
    after = (await portal.get(saved.headers["location"])).text
    assert "Your changes are saved." in after
    assert 'value="USRC17607839"' in after  # the API's compact ISRC
    assert 'value="40"' in after
    assert "Mira\nJon</textarea>" in after
    missing = re.search(r'<ul id="missing">(.*?)</ul>', after, re.S)
    assert missing
    assert [m.strip() for m in re.findall(r"<li>(.*?)</li>", missing.group(1))] == [
        "audio",
        "artwork",
    ]
    api = (await portal.get(f"/api/tracks/{track_id}")).json()
    assert api["credits"] == [
        {"name": "Nova", "role": "writer", "split": 60},
        {"name": "Mira", "role": "producer", "split": 40},
    ]
    assert api["featured_artists"] == ["Mira", "Jon"]
    assert api["explicit"] is False


async def test_audio_and_artwork_upload_without_javascript(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await start_draft(portal)
    token = csrf_in((await portal.get(f"/tracks/{track_id}")).text)

    empty = await upload(portal, track_id, "audio", b"", token=token)
    assert empty.status_code == 422
    assert 'id="audio-error"' in empty.text
    not_audio = await upload(portal, track_id, "audio", b"just some words" * 100, token=token)
    assert not_audio.status_code in (415, 422)
    assert 'id="audio-error"' in not_audio.text
    small = await upload(portal, track_id, "artwork", cover(600), token=token)
    assert small.status_code == 422
    assert 'id="artwork-error"' in small.text
    assert (await portal.get(f"/api/tracks/{track_id}")).json()["audio"] is None

    sent = await upload(portal, track_id, "audio", wav(), token=token)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/tracks/{track_id}?done=audio"
    shown = (await portal.get(sent.headers["location"])).text
    assert "The audio is uploaded." in shown
    assert 'id="audio-facts"' in shown
    player = re.search(r'<audio controls preload="metadata" src="([^"]+)"', shown)
    assert player
    link = html.unescape(player.group(1)).removeprefix(app.settings.public_url)
    played = await portal.get(link)
    assert played.status_code == 200
    assert played.content == wav()
    sent = await upload(portal, track_id, "artwork", cover(), token=token)
    assert sent.status_code == 303
    shown = (await portal.get(f"/tracks/{track_id}")).text
    assert "1400 \u00d7 1400 px" in shown


async def test_a_forged_upload_keeps_nothing(portal: httpx.AsyncClient, make_user: Any) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await start_draft(portal)
    token = csrf_in((await portal.get(f"/tracks/{track_id}")).text)
    files = {"file": ("song.wav", wav(), "audio/wav")}
    foreign = await portal.post(
        f"/tracks/{track_id}/audio",
        data={"csrf_token": token},
        files=files,
        headers={"Origin": FOREIGN},
    )
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "csrf_failed"
    tokenless = await portal.post(
        f"/tracks/{track_id}/audio", data={}, files=files, headers={"Origin": ORIGIN}
    )
    assert tokenless.status_code == 403
    assert tokenless.json()["code"] == "csrf_failed"
    track = (await portal.get(f"/api/tracks/{track_id}")).json()
    assert track["audio"] is None
    assert track["upload"] is None  # the claim was put back as it was


async def test_the_track_page_says_what_is_missing_and_sends_a_complete_track(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    incomplete = await start_draft(portal, "Half Done")
    refused = await submit(portal, incomplete)
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text
    assert "Before it can be sent for review" in refused.text  # still the track's page
    assert "isrc" in refused.text

    track_id = await complete_track(portal)
    ready = (await portal.get(f"/tracks/{track_id}")).text
    assert "Everything is in place." in ready
    sent = await submit(portal, track_id)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/tracks/{track_id}?done=submitted"
    after = (await portal.get(sent.headers["location"])).text
    assert "it can no longer be changed" in after
    assert '<fieldset class="plain" disabled>' in after
    assert 'action="/tracks/' + track_id + '/audio"' not in after
    token = csrf_in(after)
    locked = await post_form(portal, f"/tracks/{track_id}", {**DETAILS, "csrf_token": token})
    assert locked.status_code == 409
    assert 'role="alert"' in locked.text


async def test_the_page_offers_direct_upload_when_storage_presigns(
    make_settings: Any,
    database_url: str,
    app_factory: Any,
    moto_s3: S3Server,
    make_user: Any,
) -> None:
    """With S3 the audio form sends the file straight to the bucket, and the page's policy
    lets the page reach it (upload) and play from it; with local storage neither is needed."""
    settings = make_settings(
        database_url=database_url,
        rate_limits=GENEROUS_LIMITS,
        storage_backend="s3",
        s3_bucket=moto_s3.bucket,
        s3_endpoint_url=moto_s3.endpoint,
        s3_region="us-east-1",
    )
    s3_endpoint = moto_s3.endpoint
    s3_app = app_factory(settings)
    await make_user(role=Role.ARTIST)
    async with LifespanManager(s3_app), new_client(s3_app) as client:
        await log_in(client)
        track_id = await start_draft(client)
        shown = await client.get(f"/tracks/{track_id}")
        assert 'data-upload="audio"' in shown.text
        assert 'data-direct="true"' in shown.text
        policy = shown.headers["content-security-policy"]
        assert f"connect-src 'self' {s3_endpoint}" in policy
        assert f"media-src 'self' {s3_endpoint}" in policy
        assert "unsafe-inline" not in policy
        token = csrf_in(shown.text)
        sent = await upload(client, track_id, "audio", wav(), token=token)
        assert sent.status_code == 303  # without JavaScript, through the app all the same
        played = re.search(
            r'<audio controls preload="metadata" src="([^"]+)"',
            (await client.get(f"/tracks/{track_id}")).text,
        )
        assert played
        assert html.unescape(played.group(1)).startswith(s3_endpoint)


async def test_local_storage_pages_keep_the_strict_policy(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await start_draft(portal)
    shown = await portal.get(f"/tracks/{track_id}")
    assert 'data-direct="false"' in shown.text
    assert shown.headers["content-security-policy"] == HTML_CSP
    script = re.search(
        r'<script type="module" src="(/static/upload\.[0-9a-f]{12}\.js)">', shown.text
    )
    assert script
    served = await portal.get(script.group(1))
    assert served.headers["content-type"].startswith("text/javascript")
    assert "upload-url" in served.text
