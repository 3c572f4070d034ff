"""External sign-in in the portal (login buttons, linked identities on /account) and settings."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from backline.config import Settings
from backline.web.render import static_url
from tests.oidc.conftest import approve, sign_in
from tests.oidc.provider import Provider

pytestmark = pytest.mark.anyio
HTML = {"Accept": "text/html"}


async def test_login_page_offers_each_provider_without_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/login", headers=HTML)
    assert page.status_code == 200
    assert (
        '<a class="button" href="/api/auth/oidc/testid/start">Sign in with Test ID</a>' in page.text
    )
    # A plain link: the only script on the page is the passkey button's (see passkeys.js).
    scripts = re.findall(r"<script[^>]*>", page.text.split("<main", 1)[-1])
    assert scripts == [f'<script type="module" src="{static_url("passkeys.js")}">']


async def test_account_page_links_and_unlinks(
    client: httpx.AsyncClient, provider: Provider, make_user: Any
) -> None:
    assert (await sign_in(client)).status_code == 303
    account = await client.get("/account", headers=HTML)
    assert account.status_code == 200
    assert "Test ID: ann@example.com" in account.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', account.text)
    assert csrf
    form = {"csrf_token": csrf.group(1)}
    origin = {**HTML, "Origin": "https://testserver"}
    unlink = re.search(r'action="(/account/oidc/[0-9a-f-]+/unlink)"', account.text)
    assert unlink
    refused = await client.post(unlink.group(1), data=form, headers=origin)
    assert refused.status_code == 409
    assert "only way to sign in" in refused.text
    # A second identity from the provider, linked from the page: then the first may go.
    provider.subject, provider.email = "subject-2", "ann.other@example.com"
    started = await client.post("/account/oidc/testid/link", data=form, headers=origin)
    assert started.status_code == 303
    done = await client.get(await approve(client, started.headers["location"]))
    assert (done.status_code, done.headers["location"]) == (303, "/account?linked=1")
    gone = await client.post(unlink.group(1), data=form, headers=origin)
    assert (gone.status_code, gone.headers["location"]) == (303, "/account")
    account = await client.get("/account", headers=HTML)
    assert "ann.other@example.com" in account.text
    assert "Test ID: ann@example.com" not in account.text


def test_provider_settings_are_checked_one_line_each(tmp_path: Any) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        var_dir=tmp_path,
        oidc_providers={
            "Bad Name": {
                "issuer": "https://id.example.com",
                "client_id": "a",
                "client_secret": "s",
            },
            "plain": {"issuer": "http://id.example.com", "client_id": "a", "client_secret": "s"},
            "noid": {
                "issuer": "https://id.example.com",
                "client_id": "a",
                "client_secret": "",
                "scopes": "email",
            },
        },
    )
    found = [line for line in settings.problems() if "OIDC" in line]
    assert found == [
        "BACKLINE_OIDC_PROVIDERS['Bad Name']: a name is 1-32 of a-z, 0-9 and '-', "
        "starting alphanumeric",
        "BACKLINE_OIDC_PROVIDERS['plain']: issuer must be an https:// URL (http only on loopback)",
        "BACKLINE_OIDC_PROVIDERS['noid']: client_secret is empty",
        "BACKLINE_OIDC_PROVIDERS['noid']: scopes must include openid",
    ]
    shown = settings.masked()["BACKLINE_OIDC_PROVIDERS"]
    assert shown.startswith("Bad Name=https://id.example.com, plain=http://id.example.com")
    assert "client_secret" not in shown


def test_a_provider_secret_never_shows(tmp_path: Any) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        var_dir=tmp_path,
        oidc_providers={
            "acme": {
                "issuer": "https://id.example.com",
                "client_id": "a",
                "client_secret": "s3cr3t",
            }
        },
    )
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings.masked())
