"""The development mailbox: recent messages with clickable links; served only where asked,
by default only in development on a loopback address, and never in production."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from tests.served import served


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, dev_mailbox=True)


async def test_the_mailbox_lists_messages_with_clickable_links(client: httpx.AsyncClient) -> None:
    empty = await client.get("/dev/mailbox")
    assert empty.status_code == 200
    assert "No messages yet" in empty.text

    await client.post(
        "/test/signup", json={"email": "m@example.com", "display_name": "M", "age": 1}
    )
    page = await client.get("/dev/mailbox")
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "m@example.com" in page.text
    assert "Confirm your email address" in page.text
    link = "http://127.0.0.1:8000/verify-email?token=probe-token"
    assert f'<a href="{link}">' in page.text

    [detail_path] = re.findall(r'href="(/dev/mailbox/[0-9a-f-]{36})"', page.text)
    detail = await client.get(detail_path)
    assert detail.status_code == 200
    assert f'<a href="{link}">' in detail.text
    assert detail.headers["referrer-policy"] == "no-referrer"

    html = await client.get(f"{detail_path}/html")
    assert html.status_code == 200
    assert html.headers["content-security-policy"].startswith("sandbox")
    assert link in html.text


async def test_names_in_the_mailbox_are_escaped(client: httpx.AsyncClient) -> None:
    await client.post(
        "/test/signup",
        json={"email": "x@example.com", "display_name": "<script>alert(1)</script>", "age": 1},
    )
    page = await client.get("/dev/mailbox")
    detail_path = re.findall(r'href="(/dev/mailbox/[0-9a-f-]{36})"', page.text)[0]
    detail = await client.get(detail_path)
    assert "<script>alert(1)</script>" not in detail.text


async def test_an_unknown_message_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/dev/mailbox/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_the_mailbox_does_not_exist_in_production(
    app_factory: Callable[[Settings], Backline], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        env="production",
        secret_key="p" * 40,
        database_url="postgresql://u:p@127.0.0.1:1/none",
        allowed_origins="https://app.example.com",
        public_url="https://app.example.com",
        email_backend="resend",
        resend_api_key="re_x",
        encryption_keys="k1:" + "A" * 43,
        storage_backend="s3",
        s3_bucket="b",
    )
    app = app_factory(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/dev/mailbox")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "strict-transport-security" in response.headers


async def test_the_mailbox_is_not_served_unless_asked(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    # Built without `serve`, the app does not know what it listens on: no mailbox.
    app = app_factory(make_settings(env="development", database_url=database_url))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/dev/mailbox")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("host", "served_there"),
    [
        ("127.0.0.1", True),
        ("0.0.0.0", False),  # noqa: S104 - every interface; the test connects on loopback
    ],
)
@pytest.mark.slow
def test_serve_offers_the_mailbox_only_on_loopback(
    tmp_path: Path, host: str, served_there: bool
) -> None:
    with served(tmp_path, host=host, BACKLINE_ENV="development") as server:
        response = httpx.get(f"{server.url}/dev/mailbox", timeout=5)
        output = server.output
    assert response.status_code == (200 if served_there else 404)
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [banner] = [e for e in events if e["event"] == "serving"]  # JSON logs: an event, too
    assert banner["dev_mailbox"] == (f"{server.url}/dev/mailbox" if served_there else "off")
