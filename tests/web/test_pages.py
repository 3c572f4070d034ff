"""Portal pages over HTTP: forms posted the way a browser with JavaScript off posts them.

The cookies are Secure outside development, so the client speaks https to the app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from backline.app import Backline
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD, outbox

ORIGIN = "http://127.0.0.1:8000"  # the development public URL, allowed by default
FOREIGN = "https://evil.example"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url, rate_limits=GENEROUS_LIMITS, lockout_threshold=3
    )


def new_client(app: Backline) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


@pytest.fixture
async def portal(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(app) as client:
        yield client


async def log_in(client: httpx.AsyncClient, email: str = "ann@example.com") -> None:
    response = await client.post(
        "/login", data={"email": email, "password": PASSWORD}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"


async def post_login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = {"email": email, "password": password}
    return await client.post("/login", data=form, headers={"Origin": ORIGIN})


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def test_pages_use_hashed_static_files_cached_for_a_year(portal: httpx.AsyncClient) -> None:
    home = await portal.get("/")
    assert home.status_code == 200
    csp = home.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "script-src 'self'" in csp
    assert "<script" not in home.text
    assert "style=" not in home.text
    assert "<style" not in home.text
    match = re.search(r'href="(/static/portal\.[0-9a-f]{12}\.css)"', home.text)
    assert match
    sheet = await portal.get(match.group(1))
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    assert sheet.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await portal.get("/static/portal.css")).status_code == 404


async def test_a_forged_cross_site_form_post_is_refused(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/apply")).text)
    form = {"artist_name": "Forged", "bio": "Not sent by Ann."}
    forged = {
        "foreign origin": ({**form, "csrf_token": token}, {"Origin": FOREIGN}),
        "no token": (form, {"Origin": ORIGIN}),
        "wrong token": ({**form, "csrf_token": "x" * 43}, {"Origin": ORIGIN}),
        "no origin": ({**form, "csrf_token": token}, {}),
    }
    for name, (data, headers) in forged.items():
        refused = await portal.post("/apply", data=data, headers=headers)
        assert refused.status_code == 403, name
        assert refused.json()["code"] == "csrf_failed", name
    assert "Forged" not in (await portal.get("/apply")).text
    sent = await portal.post(
        "/apply", data={**form, "csrf_token": token}, headers={"Origin": ORIGIN}
    )
    assert sent.status_code == 303
    assert "Forged" in (await portal.get("/apply")).text


async def test_a_log_in_form_posted_from_another_site_is_refused(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    refused = await portal.post(
        "/login",
        data={"email": "ann@example.com", "password": PASSWORD},
        headers={"Origin": FOREIGN},
    )
    assert refused.status_code == 403
    assert "backline_access" not in refused.headers.get("set-cookie", "")


async def test_the_application_form_shows_the_apis_errors_beside_the_fields(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/apply")).text)
    answer = await portal.post(
        "/apply",
        data={"artist_name": "Ann & Co", "bio": "Songs.", "country": "ZZ", "csrf_token": token},
        headers={"Origin": ORIGIN},
    )
    assert answer.status_code == 422
    assert 'id="country-error"' in answer.text
    assert 'aria-describedby="country-hint country-error" aria-invalid="true"' in answer.text
    assert 'value="Ann &amp; Co"' in answer.text  # kept, and escaped
    assert 'role="alert"' in answer.text


async def test_the_log_in_page_says_when_an_address_is_locked(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    wrong = {"email": "ann@example.com", "password": "not the password"}
    for _ in range(3):
        await portal.post("/login", data=wrong, headers={"Origin": ORIGIN})
    locked = await portal.post(
        "/login",
        data={"email": "ann@example.com", "password": PASSWORD},
        headers={"Origin": ORIGIN},
    )
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert 'role="alert"' in locked.text
    assert "ann@example.com" in locked.text
    assert "backline_access" not in locked.headers.get("set-cookie", "")


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


async def test_sessions_mark_this_device_and_end_others(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    await make_user()
    await log_in(portal)
    async with new_client(app) as other:
        await log_in(other)
        listed = await portal.get("/sessions")
        assert listed.text.count("This device") == 1
        ends = re.findall(r'action="(/sessions/[0-9a-f-]{36}/revoke)"', listed.text)
        assert len(ends) == 1  # every session but this one
        ended = await portal.post(
            ends[0], data={"csrf_token": csrf_in(listed.text)}, headers={"Origin": ORIGIN}
        )
        assert ended.status_code == 303
        assert (await other.get("/dashboard")).headers["location"] == "/login"
        assert (await portal.get("/dashboard")).status_code == 200

        everywhere = await portal.post(
            "/sessions/end-all",
            data={"csrf_token": csrf_in(listed.text)},
            headers={"Origin": ORIGIN},
        )
        assert everywhere.status_code == 303
        assert (await portal.get("/dashboard")).headers["location"] == "/login"


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


async def test_the_log_in_form_counts_toward_the_addresss_own_limit(
    make_settings: Callable[..., Settings],
    app_factory: Callable[[Settings], Backline],
    database_url: str,
    make_user: Any,
) -> None:
    """The per-address login limit reads the address from the form, as from JSON."""
    limits = {**GENEROUS_LIMITS, "login_account": "2/minute"}
    app = app_factory(make_settings(database_url=database_url, rate_limits=limits))
    await make_user()
    async with LifespanManager(app), new_client(app) as client:
        for _ in range(2):
            await client.post(
                "/login",
                data={"email": "ann@example.com", "password": "wrong"},
                headers={"Origin": ORIGIN},
            )
        third = await client.post(
            "/login",
            data={"email": "ANN@example.com", "password": PASSWORD},
            headers={"Origin": ORIGIN},
        )
        assert third.status_code == 429
        assert third.json()["code"] == "rate_limited"
        other = await client.post(
            "/login",
            data={"email": "bob@example.com", "password": "wrong"},
            headers={"Origin": ORIGIN},
        )
        assert other.status_code == 401  # another address has its own count


async def test_signing_out_needs_the_form_and_ends_the_session(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/dashboard")).text)
    forged = await portal.post("/logout", headers={"Origin": FOREIGN}, data={"csrf_token": token})
    assert forged.status_code == 403
    assert (await portal.get("/dashboard")).status_code == 200
    out = await portal.post("/logout", headers={"Origin": ORIGIN}, data={"csrf_token": token})
    assert out.status_code == 303
    assert (await portal.get("/dashboard")).headers["location"] == "/login"


async def test_forgot_password_answers_alike_and_mails_only_an_account(
    portal: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user()
    answers = [
        await portal.post("/forgot-password", data={"email": email}, headers={"Origin": ORIGIN})
        for email in ("ann@example.com", "nobody@example.com")
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].text.replace("ann@", "") == answers[1].text.replace("nobody@", "")
    sent = await outbox(engine, "password_reset")
    assert [m.to_address for m in sent] == ["ann@example.com"]
    assert "/reset-password?token=" in (sent[0].text_body or "")
