"""The portal's second factor pages: the security page (set up, confirm, recovery codes shown
once, new codes, removal) and the login's second step and enrolment; forms refuse forgeries
and show refusals beside their fields."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.factors.models import RecoveryCode, TotpFactor
from tests.accounts.conftest import GENEROUS_LIMITS, PASSWORD
from tests.factors.conftest import budget, code_now, events, stopped_clock
from tests.web.pages import FOREIGN, ORIGIN, csrf_in, log_in, new_client, post_login

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with stopped_clock() as stopped:
        yield stopped


async def post(portal: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    return await portal.post(path, data=data, headers={"Origin": ORIGIN})


def secret_in(html: str) -> str:
    match = re.search(r'<code class="id" id="totp-secret">([A-Z2-7]+)</code>', html)
    assert match, html
    return match.group(1)


def codes_in(html: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{14})</code></li>", html)


async def set_up(portal: httpx.AsyncClient) -> tuple[str, list[str]]:
    """Through the security page: the secret and the recovery codes shown."""
    page = await portal.get("/account/security")
    assert page.status_code == 200
    token = csrf_in(page.text)
    started = await post(portal, "/account/security/totp", csrf_token=token, password=PASSWORD)
    assert started.status_code == 200, started.text
    assert "<svg" in started.text
    secret = secret_in(started.text)
    done = await post(
        portal, "/account/security/totp/confirm", csrf_token=token,
        code=code_now(secret, steps=-1),
    )  # fmt: skip
    assert done.status_code == 200, done.text
    codes = codes_in(done.text)
    assert len(codes) == 10
    return secret, codes


async def test_setting_up_shows_the_qr_code_and_the_codes_once(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    await log_in(portal)
    account = await portal.get("/account")
    assert 'href="/account/security"' in account.text
    token = csrf_in((await portal.get("/account/security")).text)
    wrong = await post(portal, "/account/security/totp", csrf_token=token, password="nope")
    assert wrong.status_code == 403
    assert 'id="password-error"' in wrong.text
    forged = await portal.post(
        "/account/security/totp",
        data={"csrf_token": token, "password": PASSWORD},
        headers={"Origin": FOREIGN},
    )
    assert forged.status_code == 403
    secret, _codes = await set_up(portal)
    again = await portal.get("/account/security")
    assert again.headers["cache-control"] == "no-store"
    assert not codes_in(again.text)  # shown once only
    assert secret not in again.text
    assert "10 of 10" in again.text


async def test_a_wrong_confirming_code_is_audited_and_enrols_nothing(
    portal: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/account/security")).text)
    started = await post(portal, "/account/security/totp", csrf_token=token, password=PASSWORD)
    secret = secret_in(started.text)
    wrong = f"{(int(code_now(secret)) + 1) % 1_000_000:06d}"
    refused = await post(portal, "/account/security/totp/confirm", csrf_token=token, code=wrong)
    assert refused.status_code == 422
    assert 'id="code-error"' in refused.text
    assert secret_in(refused.text) == secret  # the same enrolment, shown again
    assert not codes_in(refused.text)
    assert budget(refused, "mfa_manage") == budget(started, "mfa_manage") - 1
    [failed] = await events(engine, "mfa_enrol_failed")
    assert failed.details == {"reason": "invalid_mfa_code"}
    async with create_sessionmaker(engine)() as session:
        factor = (await session.scalars(select(TotpFactor))).one()
        assert factor.confirmed_at is None
        assert (await session.scalars(select(RecoveryCode))).first() is None


async def test_logging_in_takes_the_second_step(
    portal: httpx.AsyncClient, make_user: Any, app: Any, clock: time_machine.Coordinates
) -> None:
    await make_user()
    await log_in(portal)
    secret, codes = await set_up(portal)
    async with new_client(app) as browser:
        step = await post_login(browser, "ann@example.com", PASSWORD)
        assert step.status_code == 200
        assert "backline_access" not in step.cookies
        assert step.headers["cache-control"] == "no-store"
        challenge = re.search(r'name="challenge_token" value="([^"]+)"', step.text)
        assert challenge
        assert '<label for="code">' in step.text
        wrong = await post(
            browser, "/login/verify", challenge_token=challenge.group(1), code="000000"
        )
        assert wrong.status_code == 401
        assert 'id="code-error"' in wrong.text
        done = await post(
            browser, "/login/verify", challenge_token=challenge.group(1), code=code_now(secret)
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/dashboard"
        assert (await browser.get("/dashboard")).status_code == 200
    async with new_client(app) as other:
        step = await post_login(other, "ann@example.com", PASSWORD)
        challenge = re.search(r'name="challenge_token" value="([^"]+)"', step.text)
        assert challenge
        done = await post(
            other, "/login/verify", challenge_token=challenge.group(1), recovery_code=codes[0]
        )
        assert done.status_code == 303
        reused = await post(
            other, "/login/verify", challenge_token=challenge.group(1), code=code_now(secret)
        )
        assert reused.status_code == 401  # the challenge is over: back to the password
        assert '<form method="post" action="/login"' in reused.text


async def test_new_codes_and_removal_from_the_security_page(
    portal: httpx.AsyncClient, make_user: Any, clock: time_machine.Coordinates
) -> None:
    await make_user()
    await log_in(portal)
    secret, old = await set_up(portal)
    token = csrf_in((await portal.get("/account/security")).text)
    none = await post(portal, "/account/security/recovery-codes", csrf_token=token)
    assert none.status_code == 422
    assert 'id="regenerate_password-error"' in none.text
    made = await post(
        portal, "/account/security/recovery-codes", csrf_token=token,
        regenerate_code=code_now(secret),
    )  # fmt: skip
    new = codes_in(made.text)
    assert len(new) == 10
    assert not set(new) & set(old)
    bad = await post(
        portal, "/account/security/totp/remove", csrf_token=token, remove_password=PASSWORD,
        remove_code=old[0],
    )  # fmt: skip
    assert bad.status_code == 403
    assert 'id="remove_code-error"' in bad.text
    removed = await post(
        portal, "/account/security/totp/remove", csrf_token=token, remove_password=PASSWORD,
        remove_code=new[0],
    )  # fmt: skip
    assert removed.status_code == 200
    assert "is removed" in removed.text
    assert 'action="/account/security/totp"' in removed.text


async def test_a_role_that_needs_a_factor_enrols_at_login(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
) -> None:
    settings = make_settings(
        database_url=database_url, rate_limits=GENEROUS_LIMITS, mfa_required_roles="staff,admin"
    )
    app = app_factory(settings)
    async with LifespanManager(app), new_client(app) as browser:
        await make_user("boss@example.com", role=Role.ADMIN, display_name="Boss")
        step = await post_login(browser, "boss@example.com", PASSWORD)
        assert step.status_code == 200
        assert "<svg" in step.text
        assert "Your role needs a second factor" in step.text
        secret = secret_in(step.text)
        challenge = re.search(r'name="challenge_token" value="([^"]+)"', step.text)
        assert challenge
        wrong = await post(browser, "/login/enrol", challenge_token=challenge.group(1), code="1")
        assert wrong.status_code == 401
        assert 'id="code-error"' in wrong.text
        assert secret_in(wrong.text) == secret  # the same enrolment, shown again
        done = await post(
            browser, "/login/enrol", challenge_token=challenge.group(1), code=code_now(secret)
        )
        assert done.status_code == 200
        assert len(codes_in(done.text)) == 10
        assert "backline_access" in done.cookies
        assert (await browser.get("/dashboard")).status_code == 200
