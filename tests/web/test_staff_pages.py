"""Staff pages: for staff only; the application and track queues' actions; the audit log."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from backline.accounts.models import Role
from backline.app import Backline
from backline.audit import service as audit
from backline.middleware.security import HTML_CSP
from backline.web.audit_pages import PAGE_SIZE
from tests.web.pages import ORIGIN, csrf_in, log_in, new_client
from tests.web.tracks import complete_track, post_form, submit


async def test_staff_pages_are_for_staff(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    assert (await portal.get("/staff")).headers["location"] == "/login"
    await make_user()
    await log_in(portal)
    assert (await portal.get("/staff")).json()["code"] == "forbidden_role"
    shown = await portal.get("/staff", headers={"Accept": "text/html"})  # as a browser asks
    assert shown.status_code == 403
    assert shown.headers["content-type"].startswith("text/html")
    assert "forbidden_role" in shown.text
    await make_user("sam@example.com", role=Role.STAFF)
    async with new_client(app) as staff:
        await log_in(staff, "sam@example.com")
        assert (await staff.get("/staff")).status_code == 200


async def test_staff_reject_an_application_with_a_reason(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/apply")).text)
    form = {"artist_name": "Ann", "bio": "Songs.", "csrf_token": token}
    assert (await portal.post("/apply", data=form, headers={"Origin": ORIGIN})).status_code == 303
    await make_user("sam@example.com", role=Role.STAFF)
    async with new_client(app) as staff:
        await log_in(staff, "sam@example.com")
        queue = (await staff.get("/staff")).text
        claim = re.search(r'action="(/staff/applications/[0-9a-f-]{36})/claim"', queue)
        assert claim
        sent = {"csrf_token": csrf_in(queue)}
        claimed = await staff.post(f"{claim.group(1)}/claim", data=sent, headers={"Origin": ORIGIN})
        assert claimed.status_code == 303
        short = await staff.post(
            f"{claim.group(1)}/reject", data={**sent, "reason": "no"}, headers={"Origin": ORIGIN}
        )
        assert short.status_code == 422
        assert 'role="alert"' in short.text
        rejected = await staff.post(
            f"{claim.group(1)}/reject",
            data={**sent, "reason": "Send us a recording first."},
            headers={"Origin": ORIGIN},
        )
        assert rejected.status_code == 303
        again = await staff.post(f"{claim.group(1)}/approve", data=sent, headers={"Origin": ORIGIN})
        assert again.status_code == 409  # the service's refusal, shown on the queue page
        assert 'role="alert"' in again.text
    mine = (await portal.get("/apply")).text
    assert "rejected" in mine
    assert "Send us a recording first." in mine


@pytest.mark.parametrize("path", ["/staff/tracks", "/staff/audit"], ids=["tracks", "audit"])
async def test_the_track_queue_and_audit_log_are_for_staff(
    portal: httpx.AsyncClient, make_user: Any, app: Backline, path: str
) -> None:
    assert (await portal.get(path)).headers["location"] == "/login"
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    refused = await portal.get(path, headers={"Accept": "text/html"})
    assert refused.status_code == 403
    assert "forbidden_role" in refused.text
    await make_user("sam@example.com", role=Role.STAFF)
    async with new_client(app) as staff:
        await log_in(staff, "sam@example.com")
        assert (await staff.get(path)).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/staff/audit?event=" + "x" * 49,
        "/staff/audit?user=not-an-account",
        "/staff/tracks/not-a-track/claim",
        "/staff/applications/not-an-application/approve",
    ],
    ids=["long-event", "bad-account", "track-action", "application-action"],
)
async def test_staff_pages_tell_outsiders_nothing_of_their_input(
    portal: httpx.AsyncClient, make_user: Any, path: str
) -> None:
    """Whatever the query or path, nobody signed in is sent to sign in and anyone else is
    refused, before the input is looked at."""
    post = "/applications/" in path or "/tracks/" in path
    asked = portal.post(path, headers={"Origin": ORIGIN}) if post else portal.get(path)
    assert (await asked).headers["location"] == "/login"
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    asked = portal.post(path, headers={"Origin": ORIGIN}) if post else portal.get(path)
    refused = await asked
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden_role"


async def test_staff_act_on_tracks_only_as_staff(portal: httpx.AsyncClient, make_user: Any) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    track_id = await complete_track(portal)
    assert (await submit(portal, track_id)).status_code == 303
    token = csrf_in((await portal.get("/tracks")).text)
    for action in ("claim", "approve", "reject"):
        refused = await post_form(
            portal, f"/staff/tracks/{track_id}/{action}", {"csrf_token": token, "reason": "Nope."}
        )
        assert refused.status_code == 403, action
    assert (await portal.get(f"/api/tracks/{track_id}")).json()["status"] == "submitted"


async def test_staff_review_a_track_listening_through_the_signed_link(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    first = await complete_track(portal, "Low Tide")
    second = await complete_track(portal, "High Noon")
    for track_id in (first, second):
        assert (await submit(portal, track_id)).status_code == 303
    await make_user("sam@example.com", role=Role.STAFF)
    async with new_client(app) as staff:
        await log_in(staff, "sam@example.com")
        queue = await staff.get("/staff/tracks")
        assert queue.headers["content-security-policy"] == HTML_CSP  # local links are 'self'
        assert "Low Tide" in queue.text
        assert "High Noon" in queue.text
        players = re.findall(r'<audio controls preload="metadata" src="([^"]+)"', queue.text)
        assert len(players) == 2
        link = html.unescape(players[0]).removeprefix(app.settings.public_url)
        heard = await staff.get(link, headers={"Range": "bytes=0-3"})
        assert heard.status_code == 206
        assert heard.content == b"RIFF"

        sent = {"csrf_token": csrf_in(queue.text)}
        claimed = await post_form(staff, f"/staff/tracks/{first}/claim", sent)
        assert claimed.status_code == 303
        short = await post_form(staff, f"/staff/tracks/{first}/reject", {**sent, "reason": "no"})
        assert short.status_code == 422
        assert f'id="reason-{first}-error"' in short.text
        assert 'value="no"' in short.text  # what was typed is kept
        assert (await portal.get(f"/api/tracks/{first}")).json()["status"] == "in_review"
        reason = "The ending clips; send a new master."
        rejected = await post_form(
            staff, f"/staff/tracks/{first}/reject", {**sent, "reason": reason}
        )
        assert rejected.status_code == 303
        again = await post_form(staff, f"/staff/tracks/{first}/approve", sent)
        assert again.status_code == 409  # the service's refusal, shown on the queue page
        assert 'role="alert"' in again.text

        approved = await post_form(staff, f"/staff/tracks/{second}/approve", sent)
        assert approved.status_code == 303
        after = (await staff.get("/staff/tracks")).text
        assert "Low Tide" not in after
        assert "High Noon" not in after
    mine = (await portal.get(f"/tracks/{first}")).text
    assert reason in mine
    assert "Send for review" in mine  # a rejected track can be changed and sent again
    assert (await portal.get(f"/api/tracks/{second}")).json()["status"] == "approved"


async def test_the_audit_log_pages_back_with_a_cursor(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    account = await make_user("sam@example.com", role=Role.STAFF)
    async with app.state.sessionmaker() as session, session.begin():
        for n in range(PAGE_SIZE + 5):
            await audit.record(
                session, event="password_changed", user_id=account.user.id, client=None, n=n
            )
    await log_in(portal, "sam@example.com")
    first = await portal.get("/staff/audit", params={"event": "password_changed"})
    assert first.status_code == 200
    shown = re.findall(r"n: (\d+)</td>", first.text)
    assert len(shown) == PAGE_SIZE
    assert shown[0] == str(PAGE_SIZE + 4)  # newest first
    older = re.search(r'<a href="([^"]+)" rel="next">Older events</a>', first.text)
    assert older
    second = await portal.get(html.unescape(older.group(1)))
    rest = re.findall(r"n: (\d+)</td>", second.text)
    assert sorted(int(n) for n in shown + rest) == list(range(PAGE_SIZE + 5))
    assert 'rel="next"' not in second.text
    everything = (await portal.get("/staff/audit")).text
    assert "<code>login_ok</code>" in everything  # the sign-in of this test
    assert str(account.user.id)[:8] in everything


@pytest.mark.parametrize(
    ("query", "status", "shown"),
    [
        ({"event": "Not An Event"}, 422, 'id="event-error"'),
        ({"user": "someone"}, 422, 'id="user-error"'),
        ({"cursor": "bm90IGEgY3Vyc29y"}, 400, "invalid_cursor"),
    ],
    ids=["event", "user", "cursor"],
)
async def test_the_audit_log_filters_explain_their_errors(
    portal: httpx.AsyncClient, make_user: Any, query: dict[str, str], status: int, shown: str
) -> None:
    await make_user("sam@example.com", role=Role.STAFF)
    await log_in(portal, "sam@example.com")
    refused = await portal.get("/staff/audit", params=query, headers={"Accept": "text/html"})
    assert refused.status_code == status
    assert shown in refused.text
    for typed in query.values():
        if status == 422:
            assert f'value="{html.escape(typed)}"' in refused.text
