"""Passkeys in a real browser: Chromium's virtual authenticator (through the DevTools protocol:
CTAP2, internal transport, a resident key, user verification) stands in for a phone or a laptop's
fingerprint reader. A person adds a passkey on the security page (a missing name refused first),
signs out, signs in with it on `/login`, renames it, removes it (the removal asked first), and is
then refused when the authenticator still offers it. Another signs in with the password, then
completes the second step with the passkey (a spoiled sign-in step first sending them back to
`/login`). A browser without WebAuthn is told instead of being shown buttons that cannot work.

The app is served on `http://localhost:PORT` (a secure context; browsers refuse an IP address as
RP ID), with the RP ID and origin taken from `BACKLINE_PUBLIC_URL`. Every page state is checked
with axe-core and for Content-Security-Policy violations; screenshots as in `test_journey`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import served
from tests.web.browser import shoot, watch_csp
from tests.web.test_journey import checked
from tests.web.test_journey_account import make_account
from tests.web.test_journey_security import sign_out

pytestmark = pytest.mark.slow
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def virtual_authenticator(context: Any, page: Any) -> tuple[Any, str]:
    """A platform authenticator for the page, through a DevTools session: (session, its ID)."""
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable", {"enableUI": False})
    added = devtools.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return devtools, added["authenticatorId"]


def log_in_with_password(page: Any, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")


def test_add_a_passkey_sign_in_with_it_rename_and_remove_it(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "ann@example.com"
    shots = Path(os.environ.get("BACKLINE_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    port = free_port()
    url = f"http://localhost:{port}"
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=url,
        BACKLINE_DATABASE_URL=served_database,
    ) as server:
        make_account(server, email, "user", served_database)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        csp = watch_csp(page)
        devtools, authenticator = virtual_authenticator(context, page)
        log_in_with_password(page, url, email)

        page.goto(url + "/account/security")
        section = page.locator("#passkeys")
        section.get_by_text("You have no passkeys yet.").wait_for()
        assert page.locator("#passkey-support").count() == 0  # the script found WebAuthn
        checked(page, csp)
        # No name: refused beside the field, and said in the live region.
        page.get_by_role("button", name="Add a passkey").click()
        name = page.get_by_label("Name for a new passkey")
        assert name.get_attribute("aria-invalid") == "true"
        assert "Name the passkey" in page.locator("#passkey_name-error").inner_text()
        assert page.locator("#passkey-status").get_attribute("role") == "alert"
        checked(page, csp)

        name.fill("This laptop")
        page.get_by_role("button", name="Add a passkey").click()
        page.wait_for_url("**/account/security?passkey=added#passkeys")
        page.get_by_text("Your passkey is added").wait_for()
        assert section.locator("h3").all_inner_texts() == ["This laptop"]
        assert "Never" in section.locator("dl").inner_text()
        held = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(held["credentials"]) == 1
        assert held["credentials"][0]["isResidentCredential"] is True
        assert held["credentials"][0]["rpId"] == "localhost"
        checked(page, csp)
        shoot(page, shots, "security-passkeys")
        sign_out(page)

        page.goto(url + "/login")
        button = page.get_by_role("button", name="Sign in with a passkey")
        button.wait_for()
        checked(page, csp)
        button.click()
        page.wait_for_url("**/dashboard")
        held = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert held["credentials"][0]["signCount"] >= 1

        page.goto(url + "/account/security")
        assert "Never" not in section.locator("dl").inner_text()  # last used: just now
        section.get_by_text("Rename or remove “This laptop”").click()
        page.get_by_label("New name").fill("Old laptop")
        page.get_by_role("button", name="Rename").click()
        page.get_by_text("The passkey is renamed “Old laptop”.").wait_for()
        assert section.locator("h3").all_inner_texts() == ["Old laptop"]
        checked(page, csp)

        # Removal is asked first: dismissed, nothing happens; accepted, it is gone.
        asked: list[str] = []

        def answer(accept: bool) -> Any:
            def handle(dialog: Any) -> None:
                asked.append(dialog.message)
                dialog.accept() if accept else dialog.dismiss()

            return handle

        section.get_by_text("Rename or remove “Old laptop”").click()
        page.once("dialog", answer(False))
        page.get_by_role("button", name="Remove this passkey").click()
        assert asked == ["Remove the passkey “Old laptop”? It will no longer sign you in."]
        assert section.locator("h3").all_inner_texts() == ["Old laptop"]
        page.once("dialog", answer(True))
        page.get_by_role("button", name="Remove this passkey").click()
        page.get_by_text("The passkey “Old laptop” is removed").wait_for()
        section.get_by_text("You have no passkeys yet.").wait_for()
        checked(page, csp)
        sign_out(page)

        # The authenticator still offers the removed passkey: the server refuses it, and the
        # page says so in its live region.
        page.goto(url + "/login")
        page.get_by_role("button", name="Sign in with a passkey").click()
        status = page.locator("#passkey-sign-in-status")
        status.get_by_text("This passkey is not registered here.").wait_for()
        assert status.get_attribute("role") == "alert"
        assert page.url == url + "/login"
        checked(page, csp)
        context.close()


def test_a_browser_without_webauthn_is_told_so(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "bo@example.com"
    port = free_port()
    url = f"http://localhost:{port}"
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=url,
        BACKLINE_DATABASE_URL=served_database,
    ) as server:
        make_account(server, email, "user", served_database)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script("delete window.PublicKeyCredential;")
        page = context.new_page()
        csp = watch_csp(page)
        page.goto(url + "/login")
        page.wait_for_load_state("networkidle")
        assert page.locator("#passkey-sign-in").is_hidden()
        assert page.get_by_role("button", name="Sign in with a passkey").count() == 0
        checked(page, csp)
        log_in_with_password(page, url, email)
        page.goto(url + "/account/security")
        page.get_by_text("This browser cannot make passkeys.").wait_for()
        assert page.locator("#passkey-add").is_hidden()
        checked(page, csp)
        context.close()


def test_the_password_then_a_passkey_as_the_second_step(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "cy@example.com"
    shots = Path(os.environ.get("BACKLINE_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    port = free_port()
    url = f"http://localhost:{port}"
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=url,
        BACKLINE_DATABASE_URL=served_database,
    ) as server:
        make_account(server, email, "user", served_database)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        csp = watch_csp(page)
        devtools, authenticator = virtual_authenticator(context, page)
        log_in_with_password(page, url, email)  # no factor yet: the password alone
        page.goto(url + "/account/security")
        page.get_by_label("Name for a new passkey").fill("This laptop")
        page.get_by_role("button", name="Add a passkey").click()
        page.wait_for_url("**/account/security?passkey=added#passkeys")
        sign_out(page)

        # The password is right; the account holds a passkey (and no app): that is the step.
        page.goto(url + "/login")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Second step").wait_for()
        page.get_by_text("Now use your passkey.").wait_for()
        use = page.get_by_role("button", name="Use a passkey")
        use.wait_for()
        assert page.locator("#passkey-step-support").count() == 0  # the script found WebAuthn
        assert page.get_by_label("Six-digit code").count() == 0
        checked(page, csp)
        shoot(page, shots, "second-step-passkey")

        # A sign-in step that is not valid (its token spoiled here) ends the sign-in: the live
        # region says so and links to the log-in page.
        page.locator("#passkey-step input[name=challenge_token]").evaluate(
            "(field) => { field.value = 'not.a.token'; }"
        )
        use.click()
        status = page.locator("#passkey-step-status")
        status.get_by_text("sign in again").wait_for()
        assert status.get_attribute("role") == "alert"
        assert use.is_disabled()
        checked(page, csp)
        status.get_by_role("link", name="Log in again").click()
        page.wait_for_url("**/login")

        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("button", name="Use a passkey").click()
        page.wait_for_url("**/dashboard")
        held = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert held["credentials"][0]["signCount"] >= 1
        page.goto(url + "/account/security")
        assert "Never" not in page.locator("#passkeys dl").inner_text()  # used just now
        context.close()

        # A browser without WebAuthn is told on the second step, with no button that fails.
        bare = browser.new_context(viewport={"width": 1280, "height": 800})
        bare.add_init_script("delete window.PublicKeyCredential;")
        page = bare.new_page()
        csp = watch_csp(page)
        page.goto(url + "/login")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("This browser cannot use passkeys: log in from one that can.").wait_for()
        assert page.locator("#passkey-step-button").is_hidden()
        checked(page, csp)
        bare.close()
