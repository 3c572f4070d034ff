"""Portal pages renew a lapsed access cookie from the refresh cookie: pages and forms long after
signing in, CSRF still enforced, ended sessions never revived, two tabs renewing at once, a
replayed refresh cookie still caught, and signing out clearing every copy of the cookies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine

from backline.app import Backline
from backline.config import Settings
from backline.db import utcnow
from tests.web.pages import FOREIGN, ORIGIN, csrf_in, log_in, new_client
from tests.web.test_tax_pages import artist, form

SIGNED_IN = 'action="/logout"'  # the sign-out button of the page's header
GRACE = timedelta(seconds=11)  # past the 10 s in which a used refresh token is a concurrent one


@pytest.fixture
def lapse(settings: Settings) -> timedelta:
    """Long enough for the access token to lapse (the browser drops its cookie)."""
    return timedelta(minutes=settings.access_token_minutes, seconds=30)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """The clock, stopped; a test moves it on."""
    with time_machine.travel(utcnow(), tick=False) as stopped:
        yield stopped


def jar(client: httpx.AsyncClient) -> dict[tuple[str, str], str]:
    """The client's cookies by name and path, as a browser keeps them."""
    return {(c.name, c.path): c.value for c in client.cookies.jar}


def refresh_of(client: httpx.AsyncClient) -> str:
    return jar(client)[("backline_refresh", "/")]


def put_cookie(client: httpx.AsyncClient, name: str, value: str, *, path: str = "/") -> None:
    domain = next(iter(client.cookies.jar)).domain  # where the app's own cookies are kept
    client.cookies.set(name, value, domain=domain, path=path)


def cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


async def test_a_page_after_the_access_token_lapsed_is_signed_in_and_renews_the_cookies(
    portal: httpx.AsyncClient, make_user: Any, lapse: timedelta
) -> None:
    await make_user()
    await log_in(portal)
    before = jar(portal)
    with time_machine.travel(utcnow() + lapse, tick=False):
        shown = await portal.get("/dashboard")
        assert shown.status_code == 200, shown.headers.get("location")
        assert SIGNED_IN in shown.text
        assert shown.headers["cache-control"] == "no-store"
        after = jar(portal)
        assert after[("backline_access", "/")] != before[("backline_access", "/")]
        assert after[("backline_refresh", "/")] != before[("backline_refresh", "/")]
        assert after[("backline_csrf", "/")] == before[("backline_csrf", "/")]  # same session
        again = await portal.get("/account")  # the fresh access cookie serves from now on
    assert again.status_code == 200
    assert SIGNED_IN in again.text
    assert "set-cookie" not in again.headers


async def test_an_expired_access_cookie_still_presented_is_renewed_too(
    portal: httpx.AsyncClient, make_user: Any, lapse: timedelta
) -> None:
    await make_user()
    await log_in(portal)
    stale = jar(portal)[("backline_access", "/")]
    with time_machine.travel(utcnow() + lapse, tick=False):
        put_cookie(portal, "backline_access", stale)  # a browser whose clock runs behind
        shown = await portal.get("/sessions")
        assert shown.status_code == 200
        assert SIGNED_IN in shown.text
        assert jar(portal)[("backline_access", "/")] != stale


async def test_a_tax_form_posted_after_the_access_token_lapsed_is_saved(
    portal: httpx.AsyncClient, make_user: Any, lapse: timedelta
) -> None:
    token = await artist(portal, make_user)
    old_refresh = refresh_of(portal)
    with time_machine.travel(utcnow() + lapse, tick=False):
        sent = await portal.post("/tax", data=form(token), headers={"Origin": ORIGIN})
        assert sent.status_code == 303
        assert sent.headers["location"] == "/tax?saved=1"
        assert cookie_headers(sent, "backline_access")
        assert refresh_of(portal) != old_refresh
        shown = await portal.get("/tax?saved=1")
    assert "Your tax form is saved." in shown.text
    assert 'id="masked-tin"' in shown.text


async def test_a_forged_post_after_the_access_token_lapsed_is_still_refused(
    portal: httpx.AsyncClient, make_user: Any, clock: time_machine.Coordinates, lapse: timedelta
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/apply")).text)
    clock.shift(lapse)
    data = {"artist_name": "Forged", "bio": "Not sent by Ann.", "csrf_token": token}
    untouched = refresh_of(portal)
    for name, headers in {"foreign origin": {"Origin": FOREIGN}, "no origin": {}}.items():
        refused = await portal.post("/apply", data=data, headers=headers)
        assert refused.status_code == 403, name
        assert refused.json()["code"] == "csrf_failed", name
        assert not cookie_headers(refused, "backline_refresh"), name  # nothing used up
        assert refresh_of(portal) == untouched, name

    wrong = await portal.post(
        "/apply", data={**data, "csrf_token": "x" * 43}, headers={"Origin": ORIGIN}
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "csrf_failed"
    # The session was renewed before the form's token was checked: the refusal carries the new
    # cookies, or the browser would next present a used refresh token and lose its session.
    assert refresh_of(portal) != untouched

    clock.shift(lapse + GRACE)
    sent = await portal.post("/apply", data=data, headers={"Origin": ORIGIN})
    assert sent.status_code == 303
    assert sent.headers["location"] != "/login"
    assert "Forged" in (await portal.get("/apply")).text


@pytest.mark.parametrize("when", ["at once", "after the access token lapsed"])
async def test_a_session_signed_out_elsewhere_is_not_revived_by_its_refresh_cookie(
    portal: httpx.AsyncClient, app: Backline, make_user: Any, lapse: timedelta, when: str
) -> None:
    await make_user()
    await log_in(portal)
    async with new_client(app) as other:
        await log_in(other)
        token = csrf_in((await other.get("/sessions")).text)
        ended = await other.post(
            "/sessions/end-all", data={"csrf_token": token}, headers={"Origin": ORIGIN}
        )
        assert ended.status_code == 303
    shift = lapse if when != "at once" else timedelta(0)
    with time_machine.travel(utcnow() + shift, tick=False):
        shown = await portal.get("/dashboard")
        assert shown.status_code == 303
        assert shown.headers["location"] == "/login"
        # The ended session's cookies are cleared, so the browser stops presenting them.
        assert not [name for name, _ in jar(portal) if name.startswith("backline_")]
        assert (await portal.get("/dashboard")).status_code == 303


async def test_two_tabs_renewing_at_once_both_stay_signed_in(
    portal: httpx.AsyncClient,
    app: Backline,
    make_user: Any,
    clock: time_machine.Coordinates,
    lapse: timedelta,
) -> None:
    await make_user()
    await log_in(portal)
    clock.shift(lapse)
    async with new_client(app) as tab:
        for cookie in portal.cookies.jar:
            tab.cookies.jar.set_cookie(cookie)  # the same browser, another tab
        one, two = await asyncio.gather(portal.get("/dashboard"), tab.get("/tracks"))
        assert one.status_code == two.status_code == 200
        assert SIGNED_IN in one.text
        assert SIGNED_IN in two.text
        assert refresh_of(portal) == refresh_of(tab)  # the same successor: no reuse tripped
        clock.shift(lapse + GRACE)
        for client in (portal, tab):
            again = await client.get("/dashboard")
            assert again.status_code == 200
            assert SIGNED_IN in again.text


async def test_a_replayed_refresh_cookie_still_ends_the_session(
    portal: httpx.AsyncClient,
    app: Backline,
    make_user: Any,
    clock: time_machine.Coordinates,
    lapse: timedelta,
) -> None:
    await make_user()
    await log_in(portal)
    stolen = refresh_of(portal)
    clock.shift(lapse)
    assert (await portal.get("/dashboard")).status_code == 200
    clock.shift(GRACE)
    async with new_client(app) as thief:
        thief.cookies.set("backline_refresh", stolen)
        replayed = await thief.get("/dashboard")
    assert replayed.status_code == 303
    clock.shift(lapse)
    ended = await portal.get("/dashboard")  # the whole session ended, the owner's copy too
    assert ended.status_code == 303
    assert ended.headers["location"] == "/login"


async def test_signing_out_clears_the_refresh_cookie_on_every_path(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    await log_in(portal)
    # A browser signed in before the refresh cookie was widened still holds a copy under /api/auth.
    put_cookie(portal, "backline_refresh", refresh_of(portal), path="/api/auth")
    token = csrf_in((await portal.get("/dashboard")).text)
    out = await portal.post("/logout", data={"csrf_token": token}, headers={"Origin": ORIGIN})
    assert out.status_code == 303
    cleared = cookie_headers(out, "backline_refresh")
    assert any("Path=/;" in c or c.endswith("Path=/") for c in cleared), cleared
    assert any("Path=/api/auth" in c for c in cleared), cleared
    assert not [name for name, _ in jar(portal) if name.startswith("backline_")]


async def test_signing_out_after_the_access_token_lapsed_ends_the_session(
    portal: httpx.AsyncClient, make_user: Any, clock: time_machine.Coordinates, lapse: timedelta
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/dashboard")).text)
    refresh = refresh_of(portal)
    clock.shift(lapse)
    out = await portal.post("/logout", data={"csrf_token": token}, headers={"Origin": ORIGIN})
    assert out.status_code == 303
    # The sign-out's own clearing wins over the renewal's cookies.
    assert not [name for name, _ in jar(portal) if name.startswith("backline_")]
    again = await portal.post("/api/auth/refresh", json={"refresh_token": refresh})
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_refresh_token"


async def test_a_browser_holding_the_old_path_scoped_cookie_moves_to_the_wide_one(
    portal: httpx.AsyncClient, make_user: Any, lapse: timedelta
) -> None:
    await make_user()
    await log_in(portal)
    refresh = refresh_of(portal)
    portal.cookies.delete("backline_refresh", path="/")
    put_cookie(portal, "backline_refresh", refresh, path="/api/auth")  # as signed in before
    csrf = jar(portal)[("backline_csrf", "/")]
    renewed = await portal.post(
        "/api/auth/refresh", headers={"Origin": ORIGIN, "X-CSRF-Token": csrf}
    )
    assert renewed.status_code == 200
    refreshes = {path for name, path in jar(portal) if name == "backline_refresh"}
    assert refreshes == {"/"}
    with time_machine.travel(utcnow() + lapse, tick=False):
        shown = await portal.get("/dashboard")
    assert shown.status_code == 200
    assert SIGNED_IN in shown.text
