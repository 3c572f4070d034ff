"""Deferred cookies reach the browser on whatever response the request ends with, a crash
included, and give way to a cookie the response sets itself."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from backline.middleware.cookies import DeferredCookies, defer_cookies


def _defer(request: Request) -> None:
    cookies = Response()
    cookies.set_cookie("session", "renewed", httponly=True)
    cookies.set_cookie("other", "kept")
    assert defer_cookies(request.scope, cookies)


async def plain(request: Request) -> Response:
    _defer(request)
    return PlainTextResponse("hello", headers={"Cache-Control": "public, max-age=60"})


async def own(request: Request) -> Response:
    _defer(request)
    response = PlainTextResponse("signed out")
    response.delete_cookie("session")
    return response


async def crash(request: Request) -> Response:
    _defer(request)
    raise RuntimeError("the page failed after the session was renewed")


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/", plain), Route("/own", own), Route("/crash", crash)])
    transport = httpx.ASGITransport(app=DeferredCookies(app), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def cookies_of(response: httpx.Response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


async def test_deferred_cookies_go_out_with_the_response_which_is_then_not_cached() -> None:
    async with client() as http:
        response = await http.get("/")
    assert response.text == "hello"
    sent = cookies_of(response)
    assert sent["session"].startswith("session=renewed;")
    assert sent["other"].startswith("other=kept;")
    assert response.headers["cache-control"] == "no-store"


async def test_a_cookie_the_response_sets_itself_wins() -> None:
    async with client() as http:
        response = await http.get("/own")
    sessions = [c for c in response.headers.get_list("set-cookie") if c.startswith("session=")]
    assert len(sessions) == 1
    assert "Max-Age=0" in sessions[0]
    assert cookies_of(response)["other"].startswith("other=kept;")


async def test_a_crash_after_renewing_still_hands_over_the_cookies() -> None:
    async with client() as http:
        response = await http.get("/crash")
    assert response.status_code == 500
    assert cookies_of(response)["session"].startswith("session=renewed;")


async def test_without_the_middleware_nothing_is_deferred() -> None:
    assert not defer_cookies({"type": "http"}, Response())
