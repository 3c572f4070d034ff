"""The portal in a real browser: a person signs up, confirms the address through the emailed
link, logs in, applies, a staff member approves from the staff page, and the dashboard shows the
artist. Every page on the way has no serious or critical axe-core violation and no
Content-Security-Policy violation.

Screenshots of the main pages at phone and desktop widths go to the folder named by
BACKLINE_TEST_SCREENSHOTS (the README's docs/screenshots/ is made so), else under tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import Served, serve_env, served
from tests.web.browser import (
    MAX_PAGE_BYTES,
    emailed_link,
    focus_is_visible,
    page_bytes,
    serious_violations,
    shoot,
    watch_csp,
)

pytestmark = pytest.mark.slow
BACKLINE = (sys.executable, "-m", "backline")
PASSWORD = "violet harbour lantern 42"
NEW_PASSWORD = "amber meadow compass 17"


def make_staff(server: Served, email: str, database_url: str) -> None:
    """A staff account, made the way an operator does: `backline create-user`."""
    subprocess.run(
        [*BACKLINE, "create-user", "--email", email, "--role", "staff", "--password-stdin"],
        input=DEFAULT_PASSWORD.encode(),
        cwd=server.workdir,
        env=serve_env(BACKLINE_DATABASE_URL=database_url),
        check=True,
        capture_output=True,
        timeout=60,
    )


def visit(page: Any, url: str, csp: list[str]) -> None:
    page.goto(url)
    checked(page, csp)


def checked(page: Any, csp: list[str]) -> None:
    assert serious_violations(page) == [], page.url
    assert csp == [], page.url
    assert 0 < page_bytes(page) < MAX_PAGE_BYTES, page.url


def test_sign_up_to_approved_artist(served_database: str, browser: Any, tmp_path: Path) -> None:
    email, staff_email = "nova@example.com", "sam@example.com"
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
        person = browser.new_context(viewport={"width": 1280, "height": 800})
        page = person.new_page()
        csp = watch_csp(page)

        visit(page, server.url + "/", csp)
        shoot(page, shots, "home")
        page.get_by_role("link", name="Sign up").first.click()
        checked(page, csp)
        page.get_by_label("Your name").fill("Nova")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Sign up").click()
        # The API's password rule, beside the field; what was typed is kept, but the password.
        assert page.locator("#password-error").is_visible()
        assert page.get_by_label("Email address").input_value() == email
        assert page.get_by_label("Password").input_value() == ""
        checked(page, csp)
        shoot(page, shots, "signup-error")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        assert page.get_by_role("heading", name="Check your inbox").is_visible()

        # Logging in before confirming offers to send the link again.
        visit(page, server.url + "/login", csp)
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_role("button", name="Send a new link").is_visible()
        checked(page, csp)

        page.goto(emailed_link(mail, "/verify-email"))
        checked(page, csp)
        page.get_by_role("button", name="Confirm my email address").click()
        assert page.get_by_role("heading", name="Email confirmed").is_visible()

        visit(page, server.url + "/login", csp)
        shoot(page, shots, "login")
        # Keyboard only: the skip link comes first, then the form, each focus drawn.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
        assert focus_is_visible(page)
        page.get_by_label("Email address").focus()
        page.keyboard.type(email)
        page.keyboard.press("Tab")
        assert focus_is_visible(page)
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url("**/dashboard")
        checked(page, csp)
        assert page.locator("#role").inner_text() == "user"

        page.get_by_role("link", name="Artist application").click()
        checked(page, csp)
        artist = "Nova and the Tides"
        page.get_by_label("Artist name").fill(artist)
        page.get_by_label("About your music").fill("Tidal synth-pop from the coast.")
        page.get_by_label("Country (optional)").fill("ZZ")
        page.get_by_role("button", name="Send my application").click()
        assert page.locator("#country-error").is_visible()
        assert page.get_by_label("Artist name").input_value() == artist
        checked(page, csp)
        page.get_by_label("Country (optional)").fill("PT")
        page.get_by_role("button", name="Send my application").click()
        assert page.locator("#application-status").inner_text() == "submitted"
        checked(page, csp)
        shoot(page, shots, "apply")

        visit(page, server.url + "/sessions", csp)
        assert page.get_by_text("This device").is_visible()
        shoot(page, shots, "sessions")

        make_staff(server, staff_email, served_database)
        staff = browser.new_context(viewport={"width": 1280, "height": 800})
        desk = staff.new_page()
        desk_csp = watch_csp(desk)
        visit(desk, server.url + "/login", desk_csp)
        desk.get_by_label("Email address").fill(staff_email)
        desk.get_by_label("Password").fill(DEFAULT_PASSWORD)
        desk.get_by_role("button", name="Log in").click()
        desk.wait_for_url("**/dashboard")
        desk.get_by_role("link", name="Staff").click()
        checked(desk, desk_csp)
        desk.get_by_role("button", name=f"Claim {artist}").click()
        checked(desk, desk_csp)
        shoot(desk, shots, "staff")
        desk.get_by_role("button", name=f"Approve {artist}").click()
        desk.wait_for_url("**/staff")
        assert desk.get_by_role("heading", name=artist).count() == 0
        staff.close()

        visit(page, server.url + "/dashboard", csp)
        assert page.locator("#role").inner_text() == "artist"

        page.get_by_role("link", name="Tracks").click()
        page.get_by_label("Title").fill("Low Tide")
        page.get_by_role("button", name="Start the draft").click()
        checked(page, csp)
        page.get_by_role("button", name="Send for review: Low Tide").click()
        # The API's refusal of an incomplete track, naming what it misses.
        assert "audio" in page.get_by_role("alert").inner_text()
        checked(page, csp)
        shoot(page, shots, "tracks")

        visit(page, server.url + "/dashboard", csp)
        assert page.get_by_role("cell", name="Low Tide").is_visible()
        shoot(page, shots, "dashboard")

        # The person's page for staff is refused to anyone else.
        assert page.goto(server.url + "/staff").status == 403
        assert page.get_by_text("forbidden_role").is_visible()
        checked(page, csp)

        # Signed out, the password forgotten: a new one from the emailed link.
        page.goto(server.url + "/dashboard")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(server.url + "/")
        sent_before = set(mail.glob("*.eml"))
        visit(page, server.url + "/forgot-password", csp)
        page.get_by_label("Email address").fill(email)
        page.get_by_role("button", name="Email me a link").click()
        assert page.get_by_role("status").is_visible()
        page.goto(emailed_link(mail, "/reset-password", seen=sent_before))
        checked(page, csp)
        shoot(page, shots, "reset-password")
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_label("The same again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set the new password").click()
        assert page.get_by_role("heading", name="Password changed").is_visible()
        checked(page, csp)
        visit(page, server.url + "/login", csp)
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/dashboard")
        person.close()
