"""A whole sign-in over real sockets: `backline serve`, the loopback provider, a browser."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import tests.served
from tests.conftest import free_port
from tests.oidc.provider import Provider
from tests.served import served

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def database_url() -> str:
    return ""  # the served process keeps its own SQLite database


async def test_sign_in_against_backline_serve(
    tmp_path: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tests.served, "START_SECONDS", 120)  # a loaded machine starts slowly
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    providers = json.dumps({"testid": provider.settings()})
    with served(
        tmp_path,
        port=port,
        BACKLINE_ENV="development",
        BACKLINE_PUBLIC_URL=public_url,
        BACKLINE_OIDC_PROVIDERS=providers,
    ) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as browser:
            login = await browser.get("/login")
            assert "/api/auth/oidc/testid/start" in login.text
            started = await browser.get("/api/auth/oidc/testid/start")
            assert started.status_code == 303, started.text
            approved = await browser.get(started.headers["location"])
            assert approved.status_code == 302
            done = await browser.get(approved.headers["location"])
            assert (done.status_code, done.headers["location"]) == (303, "/dashboard")
            me = await browser.get("/api/me")
            assert me.status_code == 200, me.text
            assert me.json()["email"] == "ann@example.com"
            dashboard = await browser.get("/dashboard")
            assert dashboard.status_code == 200
        assert provider.settings()["client_secret"] not in server.output
