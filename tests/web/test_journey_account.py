"""The account in a real browser: an artist saves the W-9 and sees only the masked TIN, uses the
account page, sees the calm notice of an assistant not configured, and resets the password
from the emailed link while signed in on a second browser, which is signed out by it. Every
page has no serious or critical axe-core violation and no Content-Security-Policy violation;
screenshots as in `test_journey`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import Served, serve_env, served
from tests.web.browser import emailed_link, shoot, watch_csp
from tests.web.test_journey import BACKLINE, checked, visit

pytestmark = pytest.mark.slow
NEW_PASSWORD = "amber meadow compass 17"
SSN, SSN_DIGITS = "401-52-7386", "401527386"


def make_account(server: Served, email: str, role: str, database_url: str) -> None:
    """An account made the way an operator does: `backline create-user`."""
    subprocess.run(
        [*BACKLINE, "create-user", "--email", email, "--role", role, "--password-stdin"],
        input=DEFAULT_PASSWORD.encode(),
        cwd=server.workdir,
        env=serve_env(BACKLINE_DATABASE_URL=database_url),
        check=True,
        capture_output=True,
        timeout=60,
    )


def log_in(page: Any, url: str, email: str, password: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")


def fill_w9(page: Any, *, postal_code: str) -> None:
    page.get_by_label("Name (as shown on your income tax return)").fill("Ann Marie O'Neil")
    page.get_by_label("Federal tax classification").select_option("individual")
    page.get_by_label("Address", exact=True).fill("12 Harbor St")
    page.get_by_label("City").fill("Brooklyn")
    page.get_by_label("State or territory").select_option("NY")
    page.get_by_label("ZIP code").fill(postal_code)
    page.get_by_label("Social Security number (SSN)").check()
    page.get_by_label("Number", exact=True).fill(SSN)
    page.get_by_label("I certify the statements above").check()
    page.get_by_label("Signature: type your legal name").fill("Ann Marie O'Neil")
    page.get_by_role("button", name="Sign and save").click()


def test_tax_form_account_page_and_a_reset_that_signs_out_the_other_browser(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "ann@example.com"
    shots = Path(os.environ.get("BACKLINE_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    port = free_port()
    mail = tmp_path / "mail"
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        BACKLINE_EMAIL_BACKEND="file",
        BACKLINE_EMAIL_FILE_DIR=str(mail),
        BACKLINE_DATABASE_URL=served_database,
    ) as server:
        make_account(server, email, "artist", served_database)
        laptop = browser.new_context(viewport={"width": 1280, "height": 800})
        page = laptop.new_page()
        csp = watch_csp(page)
        log_in(page, server.url, email, DEFAULT_PASSWORD)

        # The W-9: a refusal beside its field keeps what was typed but the TIN.
        page.get_by_role("link", name="Tax form").click()
        checked(page, csp)
        fill_w9(page, postal_code="1120")
        assert page.locator("#postal_code-error").is_visible()
        assert page.get_by_label("City").input_value() == "Brooklyn"
        assert page.get_by_label("Number", exact=True).input_value() == ""
        checked(page, csp)
        shoot(page, shots, "tax-error")
        page.get_by_label("ZIP code").fill("11201")
        page.get_by_label("Number", exact=True).fill(SSN)
        page.get_by_role("button", name="Sign and save").click()
        page.wait_for_url("**/tax?saved=1")
        assert page.locator("#masked-tin").inner_text() == "***-**-7386"
        html = page.content()
        assert SSN not in html
        assert SSN_DIGITS not in html
        checked(page, csp)
        shoot(page, shots, "tax")

        # A second browser signed in as the same person.
        phone = browser.new_context(viewport={"width": 390, "height": 844})
        other = phone.new_page()
        other_csp = watch_csp(other)
        log_in(other, server.url, email, DEFAULT_PASSWORD)

        visit(page, server.url + "/account", csp)
        shoot(page, shots, "account")
        page.get_by_label("Current password", exact=True).fill("not the password")
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change the password").click()
        assert page.locator("#current_password-error").is_visible()
        assert page.get_by_label("New password", exact=True).input_value() == ""
        checked(page, csp)
        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data").click()
        assert email in Path(download.value.path()).read_text(encoding="utf-8")

        # This server has no chat provider: the assistant's page says so calmly.
        visit(page, server.url + "/chat", csp)
        assert page.get_by_text("not switched on").is_visible()
        assert page.get_by_label("Your message").count() == 0

        # The password reset from the emailed link ends every session, the other browser's too.
        sent_before = set(mail.glob("*.eml"))
        visit(page, server.url + "/forgot-password", csp)
        page.get_by_label("Email address").fill(email)
        page.get_by_role("button", name="Email me a link").click()
        page.goto(emailed_link(mail, "/reset-password", seen=sent_before))
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_label("The same again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set the new password").click()
        assert page.get_by_role("heading", name="Password changed").is_visible()
        other.goto(server.url + "/dashboard")
        assert other.url == server.url + "/login"
        assert other.get_by_role("button", name="Log in").is_visible()
        checked(other, other_csp)
        page.goto(server.url + "/tax")
        assert page.url == server.url + "/login"

        # Deleting the account asks for the password, then signs out.
        log_in(page, server.url, email, NEW_PASSWORD)
        visit(page, server.url + "/account", csp)
        page.get_by_label("Current password, to confirm").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Delete my account").click()
        assert page.get_by_role("heading", name="Your account is deleted").is_visible()
        checked(page, csp)
        page.goto(server.url + "/dashboard")
        assert page.url == server.url + "/login"
        phone.close()
        laptop.close()
