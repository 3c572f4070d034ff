"""Second factors in a real browser: a person sets up an authenticator app from the account
page (the QR code and the secret shown, the recovery codes once), then logs in with a code from
it, and then with a recovery code. Every page has no serious or critical axe-core violation
and no Content-Security-Policy violation; screenshots as in `test_journey`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from backline.factors import totp
from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import served
from tests.web.browser import shoot, watch_csp
from tests.web.test_journey import checked
from tests.web.test_journey_account import make_account

pytestmark = pytest.mark.slow


def password_step(page: Any, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Six-digit code").wait_for()


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/")


def test_set_up_an_authenticator_then_log_in_with_it_and_with_a_recovery_code(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "ann@example.com"
    shots = Path(os.environ.get("BACKLINE_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    port = free_port()
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        BACKLINE_DATABASE_URL=served_database,
    ) as server:
        make_account(server, email, "user", served_database)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        csp = watch_csp(page)
        page.goto(server.url + "/login")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/dashboard")

        page.goto(server.url + "/account")
        page.get_by_role("link", name="Security settings").click()
        page.wait_for_url("**/account/security")
        checked(page, csp)
        page.get_by_label("Your password, to begin").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Set up an authenticator app").click()
        page.locator("figure.qr svg").wait_for()
        checked(page, csp)
        shoot(page, shots, "security-setup")
        secret = page.locator("#totp-secret").inner_text()
        step = totp.step_at_epoch(time.time())
        page.get_by_label("Code from the app").fill(totp.code_at(secret, step))
        page.get_by_role("button", name="Confirm").click()
        codes = page.locator("ul.codes code").all_inner_texts()
        assert len(codes) == 10
        checked(page, csp)
        shoot(page, shots, "security-codes")
        page.reload()
        assert page.locator("ul.codes").count() == 0  # shown once
        sign_out(page)

        # The next step's code: within the drift allowed, later than the one used above.
        password_step(page, server.url, email)
        checked(page, csp)
        shoot(page, shots, "login-second-step")
        page.get_by_label("Six-digit code").fill(totp.code_at(secret, step + 1))
        page.get_by_role("button", name="Continue", exact=True).click()
        page.wait_for_url("**/dashboard")
        sign_out(page)

        password_step(page, server.url, email)
        page.get_by_text("Lost your phone? Use a recovery code").click()
        page.get_by_label("Recovery code").fill(codes[0])
        page.get_by_role("button", name="Continue with the recovery code").click()
        page.wait_for_url("**/dashboard")
        checked(page, csp)
        context.close()
