"""Helpers of the portal's page tests: a client posting forms as a browser does."""

from __future__ import annotations

import re

import httpx

from backline.app import Backline
from tests.accounts.conftest import PASSWORD

ORIGIN = "http://127.0.0.1:8000"  # the development public URL, allowed by default
FOREIGN = "https://evil.example"


def new_client(app: Backline) -> httpx.AsyncClient:
    """A client of the app over https: the cookies are Secure outside development."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


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
