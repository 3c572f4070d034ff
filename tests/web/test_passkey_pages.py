"""The portal's passkey pages: the security page lists the account's passkeys (name, added,
last used) with forms to rename and remove each, and the form that `passkeys.js` uses to add
one; `/login` offers signing in with one, and the second step after a password offers using
one. A passkey added and used as the script does it (the cookie session, the page's CSRF token
in `X-CSRF-Token`), with the software authenticator. A role that needs a second factor counts
a passkey (the page's prompt, the authenticator app's removal) and keeps its last factor.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import time_machine
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role, User
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.passkeys.models import Passkey
from backline.web.render import static_url
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD
from tests.factors.conftest import code_now, stopped_clock
from tests.passkeys.authenticator import Authenticator
from tests.web.pages import FOREIGN, ORIGIN, csrf_in, log_in, new_client, post_login

LIMITS = {
    **GENEROUS_LIMITS,
    "passkey_login": "100000/minute",
    "passkey_register": "100000/hour",
    "mfa_verify": "100000/minute",
    "mfa_passkey": "100000/minute",
    "mfa_manage": "100000/minute",
}
PROMPT = "Your role needs a second factor to sign in"
LAST_FACTOR = "Your role needs a second factor, so the last one cannot be removed."


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url,
        rate_limits=LIMITS,
        public_url=ORIGIN,
        mfa_required_roles="staff,admin",
    )


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator(origin=ORIGIN)


async def stored(engine: AsyncEngine) -> list[Passkey]:
    async with create_sessionmaker(engine)() as session:
        return list((await session.scalars(select(Passkey).order_by(Passkey.created_at))).all())


async def events(engine: AsyncEngine, name: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


async def add_as_the_script_does(
    portal: httpx.AsyncClient, authenticator: Authenticator, name: str
) -> httpx.Response:
    """What `passkeys.js` sends from the security page: options, then the credential."""
    token = csrf_in((await portal.get("/account/security")).text)
    headers = {"X-CSRF-Token": token, "Origin": ORIGIN}
    options = await portal.post("/api/me/passkeys/options", headers=headers, json={})
    assert options.status_code == 200, options.text
    _, created = authenticator.create(options.json())
    return await portal.post(
        "/api/me/passkeys", headers=headers, json={"name": name, "credential": created}
    )


async def post(portal: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    return await portal.post(path, data=data, headers={"Origin": ORIGIN})


def passkey_items(html: str) -> list[str]:
    found = re.search(r'<ul class="passkeys">(.*?)</ul>', html, re.S)
    return re.findall(r"<h3>(.*?)</h3>", found.group(1)) if found else []


async def test_the_security_page_offers_passkeys_with_a_script_the_policy_allows(
    portal: httpx.AsyncClient, make_user: Callable[..., Any]
) -> None:
    await make_user()
    await log_in(portal)
    shown = await portal.get("/account/security")
    assert shown.status_code == 200
    html = shown.text
    assert '<h2 id="passkeys-heading">Passkeys</h2>' in html
    assert "You have no passkeys yet." in html
    # Adding needs the script and WebAuthn: the form is hidden until the script shows it, and
    # the page says what is needed instead.
    assert '<form id="passkey-add" hidden novalidate>' in html
    assert 'id="passkey-support"' in html
    assert 'id="passkey-status" role="status"' in html
    script = static_url("passkeys.js")
    assert f'<script type="module" src="{script}"></script>' in html
    assert "script-src 'self'" in shown.headers["content-security-policy"]
    assert "unsafe-inline" not in shown.headers["content-security-policy"]
    served = await portal.get(script)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    assert "navigator.credentials.create" in served.text


async def test_a_passkey_added_as_the_script_does_is_listed_then_signs_in(
    app: Any,
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
) -> None:
    await make_user()
    await log_in(portal)
    added = await add_as_the_script_does(portal, authenticator, "Work laptop")
    assert added.status_code == 201, added.text
    shown = await portal.get("/account/security?passkey=added")
    assert "Your passkey is added" in shown.text
    assert passkey_items(shown.text) == ["Work laptop"]
    assert "<dt>Last used</dt><dd>Never</dd>" in shown.text
    assert "Rename or remove “Work laptop”" in shown.text
    # Only the one notice the script asks for: the query cannot put other words on the page.
    other = await portal.get("/account/security?passkey=%3Cb%3Ehello")
    assert "Your passkey is added" not in other.text

    async with new_client(app) as browser:
        login = await browser.get("/login")
        assert 'id="passkey-sign-in" data-next="/dashboard"' in login.text
        assert 'aria-label="Sign in with a passkey" hidden>' in login.text
        assert login.text.count(static_url("passkeys.js")) == 1
        assert '<main id="main" class="narrow">' in login.text
        options = await browser.post("/api/auth/passkeys/options", json={})
        assertion = authenticator.get(options.json())
        verified = await browser.post(
            "/api/auth/passkeys/verify", json={"credential": assertion, "mode": "cookie"}
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["access_token"] is None
        assert (await browser.get("/dashboard")).status_code == 200
        again = await browser.get("/account/security")
        assert "<dt>Last used</dt><dd>Never</dd>" not in again.text
        assert re.search(r"<dt>Last used</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC</dd>", again.text)


async def test_renaming_a_passkey_and_its_refusals(
    app: Any,
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    await make_user()
    await make_user("bo@example.com")
    await log_in(portal)
    assert (await add_as_the_script_does(portal, authenticator, "Phone")).status_code == 201
    (mine,) = await stored(engine)
    token = csrf_in((await portal.get("/account/security")).text)
    path = f"/account/security/passkeys/{mine.id}/rename"

    blank = await post(portal, path, csrf_token=token, name="   ")
    assert blank.status_code == 422
    field = f"rename-{mine.id}"
    assert f'aria-invalid="true" aria-describedby="{field}-error"' in blank.text
    assert f'<p class="field-error" id="{field}-error">' in blank.text
    assert re.search(r"<details open>\s*<summary>Rename or remove “Phone”", blank.text)
    hidden = await post(portal, path, csrf_token=token, name="Phone\u200b")
    assert hidden.status_code == 422
    forged = await portal.post(
        path, data={"csrf_token": token, "name": "Stolen"}, headers={"Origin": FOREIGN}
    )
    assert forged.status_code == 403
    no_token = await post(portal, path, name="Stolen")
    assert no_token.status_code == 403
    assert [p.name for p in await stored(engine)] == ["Phone"]

    renamed = await post(portal, path, csrf_token=token, name="  Old phone  ")
    assert renamed.status_code == 200
    assert "The passkey is renamed “Old phone”." in renamed.text
    assert passkey_items(renamed.text) == ["Old phone"]

    # Another account cannot rename it: the same 404 as a passkey that does not exist.
    async with new_client(app) as other:
        await log_in(other, "bo@example.com")
        theirs = csrf_in((await other.get("/account/security")).text)
        refused = await post(other, path, csrf_token=theirs, name="Mine now")
        assert refused.status_code == 404
        assert "No such passkey." in refused.text
    assert [p.name for p in await stored(engine)] == ["Old phone"]


async def test_removing_a_passkey_is_asked_first_and_audited(
    app: Any,
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    await make_user()
    await make_user("bo@example.com")
    await log_in(portal)
    assert (await add_as_the_script_does(portal, authenticator, "Key")).status_code == 201
    assert (await add_as_the_script_does(portal, authenticator, "Tablet")).status_code == 201
    key, tablet = await stored(engine)
    page = await portal.get("/account/security")
    assert passkey_items(page.text) == ["Key", "Tablet"]
    assert 'data-confirm="Remove the passkey “Key”? It will no longer sign you in."' in page.text
    token = csrf_in(page.text)

    async with new_client(app) as other:
        await log_in(other, "bo@example.com")
        theirs = csrf_in((await other.get("/account/security")).text)
        refused = await post(
            other, f"/account/security/passkeys/{key.id}/remove", csrf_token=theirs
        )
        assert refused.status_code == 404
    forged = await portal.post(
        f"/account/security/passkeys/{key.id}/remove",
        data={"csrf_token": token},
        headers={"Origin": FOREIGN},
    )
    assert forged.status_code == 403
    assert len(await stored(engine)) == 2

    removed = await post(portal, f"/account/security/passkeys/{key.id}/remove", csrf_token=token)
    assert removed.status_code == 200
    assert "The passkey “Key” is removed" in removed.text
    assert passkey_items(removed.text) == ["Tablet"]
    assert [p.id for p in await stored(engine)] == [tablet.id]
    (event,) = await events(engine, "passkey_removed")
    assert event.details["passkey_id"] == str(key.id)

    # The removed passkey no longer signs in.
    async with new_client(app) as browser:
        options = await browser.post("/api/auth/passkeys/options", json={})
        credential = authenticator.credentials[0]
        assertion = authenticator.get(options.json(), credential=credential)
        refused = await browser.post(
            "/api/auth/passkeys/verify", json={"credential": assertion, "mode": "cookie"}
        )
        assert refused.status_code == 401
        assert refused.json()["code"] == "unknown_credential"


async def test_the_passkey_forms_need_a_sign_in(portal: httpx.AsyncClient) -> None:
    path = "/account/security/passkeys/00000000-0000-0000-0000-000000000000"
    for action in ("rename", "remove"):
        answer = await post(portal, f"{path}/{action}", csrf_token="x", name="n")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login"


# ----------------------------------------------------------------------------- second factors


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with stopped_clock() as stopped:
        yield stopped


async def make_staff(engine: AsyncEngine, email: str = "ann@example.com") -> None:
    """The role changed while signed in (staff must hold a second factor)."""
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(update(User).where(User.email == email).values(role=Role.STAFF))


async def set_up_app(portal: httpx.AsyncClient) -> list[str]:
    """An authenticator app set up through the security page: its recovery codes."""
    token = csrf_in((await portal.get("/account/security")).text)
    started = await post(portal, "/account/security/totp", csrf_token=token, password=PASSWORD)
    assert started.status_code == 200, started.text
    secret = re.search(r'<code class="id" id="totp-secret">([A-Z2-7]+)</code>', started.text)
    assert secret
    done = await post(
        portal, "/account/security/totp/confirm", csrf_token=token,
        code=code_now(secret.group(1), steps=-1),
    )  # fmt: skip
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([a-z0-9-]{14})</code></li>", done.text)
    assert len(codes) == 10
    return codes


def removes_the_app(html: str) -> bool:
    return 'action="/account/security/totp/remove"' in html


async def test_a_required_roles_last_passkey_is_kept_by_the_remove_form(
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    await make_user()
    await log_in(portal)
    await make_staff(engine)
    bare = await portal.get("/account/security")
    assert PROMPT in bare.text  # no factor yet: the page prompts
    assert "set up an authenticator app or add a passkey" in bare.text
    assert (await add_as_the_script_does(portal, authenticator, "Key")).status_code == 201
    page = await portal.get("/account/security")
    assert PROMPT not in page.text  # a passkey meets the need (`required_met`)
    (key,) = await stored(engine)
    token = csrf_in(page.text)

    refused = await post(portal, f"/account/security/passkeys/{key.id}/remove", csrf_token=token)
    assert refused.status_code == 409
    assert f'<p class="alert" role="alert">{LAST_FACTOR}</p>' in refused.text
    assert passkey_items(refused.text) == ["Key"]
    assert [p.id for p in await stored(engine)] == [key.id]
    assert await events(engine, "passkey_removed") == []

    # One of two may go; the one left may not.
    assert (await add_as_the_script_does(portal, authenticator, "Tablet")).status_code == 201
    removed = await post(portal, f"/account/security/passkeys/{key.id}/remove", csrf_token=token)
    assert removed.status_code == 200
    assert "The passkey “Key” is removed" in removed.text
    (tablet,) = await stored(engine)
    again = await post(portal, f"/account/security/passkeys/{tablet.id}/remove", csrf_token=token)
    assert again.status_code == 409
    assert LAST_FACTOR in again.text
    assert passkey_items(again.text) == ["Tablet"]
    (event,) = await events(engine, "passkey_removed")
    assert event.details["passkey_id"] == str(key.id)


async def test_a_required_role_may_remove_its_app_while_a_passkey_stays(
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
    clock: time_machine.Coordinates,
) -> None:
    await make_user()
    await log_in(portal)
    assert (await add_as_the_script_does(portal, authenticator, "Key")).status_code == 201
    await make_staff(engine)
    codes = await set_up_app(portal)
    page = await portal.get("/account/security")
    assert PROMPT not in page.text
    assert removes_the_app(page.text)  # a passkey stays: the app may go
    assert "Logging in then asks for your passkey after the password." in page.text
    token = csrf_in(page.text)
    removed = await post(
        portal, "/account/security/totp/remove", csrf_token=token,
        remove_password=PASSWORD, remove_code=codes[0],
    )  # fmt: skip
    assert removed.status_code == 200, removed.text
    assert "The authenticator app is removed" in removed.text
    assert PROMPT not in removed.text

    # With the app again, the passkey may go; then the app is the last factor, and stays.
    codes = await set_up_app(portal)
    (key,) = await stored(engine)
    gone = await post(portal, f"/account/security/passkeys/{key.id}/remove", csrf_token=token)
    assert gone.status_code == 200, gone.text
    assert not removes_the_app(gone.text)
    assert PROMPT not in gone.text
    refused = await post(
        portal, "/account/security/totp/remove", csrf_token=token,
        remove_password=PASSWORD, remove_code=codes[0],
    )  # fmt: skip
    assert refused.status_code == 409
    assert f'<p class="alert" role="alert">{LAST_FACTOR}</p>' in refused.text
    assert "10 of 10" in refused.text  # the app stays, and the code was not used up


def challenge_in(html: str) -> str:
    section = re.search(r'<section class="card" id="passkey-step"(.*?)</section>', html, re.S)
    assert section, html
    token = re.search(r'name="challenge_token" value="([^"]+)"', section.group(1))
    assert token
    return token.group(1)


async def test_the_second_step_offers_the_passkey_and_the_script_completes_it(
    app: Any,
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    await make_user()
    await log_in(portal)
    assert (await add_as_the_script_does(portal, authenticator, "Key")).status_code == 201
    await make_staff(engine)  # a passkey alone meets the role's need: no enrolment

    async with new_client(app) as browser:
        step = await post_login(browser, "ann@example.com", PASSWORD)
        assert step.status_code == 200
        assert "backline_access" not in step.cookies
        html = step.text
        assert "Now use your passkey." in html
        assert (
            '<div id="passkey-step-action" hidden>'
            '<button type="button" id="passkey-step-button">Use a passkey</button></div>'
        ) in html
        assert 'id="passkey-step-status" role="status"' in html
        assert 'id="passkey-step-support"' in html  # said until the script finds WebAuthn
        # A passkey-only account is offered no code fields.
        assert '<label for="code">' not in html
        assert "recovery code" not in html
        script = static_url("passkeys.js")
        assert f'<script type="module" src="{script}"></script>' in html
        policy = step.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        assert "unsafe-inline" not in policy
        served = await browser.get(script)
        assert "/api/auth/mfa/passkey/verify" in served.text
        token = challenge_in(html)

        # What the script sends: the page's challenge token, then the assertion, cookie mode.
        options = await browser.post(
            "/api/auth/mfa/passkey/options", json={"challenge_token": token}
        )
        assert options.status_code == 200, options.text
        verified = await browser.post(
            "/api/auth/mfa/passkey/verify",
            json={
                "challenge_token": token,
                "credential": authenticator.get(options.json()),
                "mode": "cookie",
            },
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["access_token"] is None
        assert (await browser.get("/dashboard")).status_code == 200
        # The sign-in is over: a `challenge_*` code, which the script answers with /login.
        over = await browser.post("/api/auth/mfa/passkey/options", json={"challenge_token": token})
        assert over.status_code == 401
        assert over.json()["code"] == "challenge_used"


async def test_the_second_step_shown_again_still_offers_the_passkey(
    app: Any,
    portal: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    clock: time_machine.Coordinates,
) -> None:
    await make_user()
    await log_in(portal)
    assert (await add_as_the_script_does(portal, authenticator, "Key")).status_code == 201
    await set_up_app(portal)
    async with new_client(app) as browser:
        step = await post_login(browser, "ann@example.com", PASSWORD)
        assert step.status_code == 200
        assert (
            "Now enter the code your authenticator app shows for Backline, or use your passkey."
            in (step.text)
        )
        token = challenge_in(step.text)
        assert '<label for="code">' in step.text
        assert "Lost your phone? Use a recovery code" in step.text
        for code in ("", "000000"):
            again = await post(browser, "/login/verify", challenge_token=token, code=code)
            assert again.status_code in (401, 422)
            assert 'id="code-error"' in again.text
            assert challenge_in(again.text) == token
            assert '<label for="code">' in again.text
