"""The loopback OpenID provider, and an app configured to sign in with it, on each database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from backline.app import Backline
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS
from tests.conftest import free_port
from tests.oidc.provider import Provider, serve

OIDC_LIMITS = {**GENEROUS_LIMITS, "oidc": "100000/minute", "oidc_failure": "100000/minute"}
PUBLIC_URL = "https://testserver"


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    found = Provider(port=free_port())
    server, task = await serve(found)
    yield found
    server.should_exit = True
    await task


@pytest.fixture
def oidc_settings(
    make_settings: Callable[..., Settings], database_url: str, provider: Provider
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "rate_limits": OIDC_LIMITS,
            "public_url": PUBLIC_URL,
            "oidc_providers": {"testid": provider.settings()},
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
def settings(oidc_settings: Callable[..., Settings]) -> Settings:
    return oidc_settings()


def browser(app: Backline, provider: Provider) -> httpx.AsyncClient:
    """A browser: the app in-process, the provider over its loopback socket."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 50000)),
        base_url=PUBLIC_URL,
        mounts={provider.issuer: httpx.AsyncHTTPTransport()},
        headers={"Accept": "application/json"},
    )


@pytest.fixture
async def client(app: Backline, provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app, provider) as found:
        yield found


async def to_callback(client: httpx.AsyncClient, start: str = "/api/auth/oidc/testid/start") -> str:
    """Start a sign-in and let the provider approve it: the callback URL it sends back to."""
    started = await client.get(start)
    assert started.status_code == 303, started.text
    return await approve(client, started.headers["location"])


async def approve(client: httpx.AsyncClient, authorization_url: str) -> str:
    approved = await client.get(authorization_url)
    assert approved.status_code == 302, approved.text
    callback: str = approved.headers["location"]
    assert callback.startswith(f"{PUBLIC_URL}/api/auth/oidc/testid/callback?")
    return callback


async def sign_in(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get(await to_callback(client))
