"""Browser mode: HttpOnly cookies, and CSRF on every unsafe cookie-authenticated request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from backline.app import Backline
from tests.accounts.conftest import PASSWORD

ORIGIN = "http://127.0.0.1:8000"  # the development public URL, allowed by default


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
async def browser(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


async def cookie_login(browser: httpx.AsyncClient) -> httpx.Response:
    response = await browser.post(
        "/api/auth/login",
        json={"email": "ann@example.com", "password": PASSWORD, "mode": "cookie"},
    )
    assert response.status_code == 200, response.text
    return response


async def test_cookie_login_sets_hardened_cookies_and_no_tokens_in_the_body(
    browser: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    response = await cookie_login(browser)
    body = response.json()
    assert body["access_token"] is None
    assert body["refresh_token"] is None
    assert body["csrf_token"]
    cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
    access, refresh, csrf = (
        cookies["backline_access"],
        cookies["backline_refresh"],
        cookies["backline_csrf"],
    )
    for cookie in (access, refresh, csrf):
        assert "Secure" in cookie
        assert "SameSite=lax" in cookie
    assert "HttpOnly" in access
    assert "HttpOnly" in refresh
    assert "HttpOnly" not in csrf  # the page reads it to echo it
    assert "Path=/;" in refresh or refresh.endswith("Path=/")  # portal pages renew with it
    assert "Max-Age=0" not in refresh
    assert (await browser.get("/api/me")).status_code == 200


async def test_unsafe_cookie_requests_need_the_csrf_token_and_an_allowed_origin(
    browser: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    csrf = (await cookie_login(browser)).json()["csrf_token"]
    attempts = {
        "no token": {"Origin": ORIGIN},
        "wrong token": {"Origin": ORIGIN, "X-CSRF-Token": "x" * 43},
        "foreign origin": {"Origin": "https://evil.example", "X-CSRF-Token": csrf},
        "no origin at all": {"X-CSRF-Token": csrf},
        "foreign referer": {"Referer": "https://evil.example/page", "X-CSRF-Token": csrf},
    }
    for name, headers in attempts.items():
        response = await browser.patch("/api/me", json={"display_name": "Evil"}, headers=headers)
        assert response.status_code == 403, name
        assert response.json()["code"] == "csrf_failed", name
    assert (await browser.get("/api/me")).json()["display_name"] == "Ann"

    ok = await browser.patch(
        "/api/me",
        json={"display_name": "Ann Lee"},
        headers={"Origin": ORIGIN, "X-CSRF-Token": csrf},
    )
    assert ok.status_code == 200
    via_referer = await browser.patch(
        "/api/me",
        json={"display_name": "Ann L."},
        headers={"Referer": f"{ORIGIN}/dashboard", "X-CSRF-Token": csrf},
    )
    assert via_referer.status_code == 200


async def test_a_csrf_token_of_another_session_is_refused(
    browser: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    old = (await cookie_login(browser)).json()["csrf_token"]
    await cookie_login(browser)  # a new session replaces the cookies
    response = await browser.patch(
        "/api/me", json={"display_name": "X"}, headers={"Origin": ORIGIN, "X-CSRF-Token": old}
    )
    assert response.status_code == 403


async def test_bearer_requests_need_no_csrf_token(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    tokens = (
        await client.post(
            "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
        )
    ).json()
    response = await client.patch(
        "/api/me",
        json={"display_name": "B"},
        headers={
            "Authorization": f"Bearer {tokens['access_token']}",
            "Origin": "https://evil.example",
        },
    )
    assert response.status_code == 200


async def test_cookie_refresh_rotates_with_csrf_and_logout_clears_cookies(
    browser: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    csrf = (await cookie_login(browser)).json()["csrf_token"]
    refused = await browser.post("/api/auth/refresh", headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    rotated = await browser.post(
        "/api/auth/refresh", headers={"Origin": ORIGIN, "X-CSRF-Token": csrf}
    )
    assert rotated.status_code == 200
    assert rotated.json()["access_token"] is None
    assert "backline_refresh=" in " ".join(rotated.headers.get_list("set-cookie"))
    out = await browser.post("/api/auth/logout", headers={"Origin": ORIGIN, "X-CSRF-Token": csrf})
    assert out.status_code == 204
    cleared = " ".join(out.headers.get_list("set-cookie"))
    assert 'backline_access=""' in cleared or "backline_access=;" in cleared
    assert (await browser.get("/api/me")).status_code == 401
