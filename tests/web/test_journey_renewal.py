"""Staying signed in, in a real browser: once the access cookie has lapsed (the browser drops it
when its Max-Age runs out; here it is removed, as a served app's clock cannot be moved), a long
W-9 is still saved, a page still shows the person signed in, and a chat message sent from a
page left open is still answered, as it streams. An upload started with an access token that
has expired (still sent, so the app answers the upload itself 401) is sent again once the
script has renewed the session, and lands."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import served
from tests.web.browser import expire_access
from tests.web.test_journey_account import fill_w9, log_in, make_account
from tests.web.test_journey_chat import upstream_in_a_thread
from tests.web.test_journey_tracks import WATCH_PROGRESS, upload_with_progress, write_wav

pytestmark = pytest.mark.slow
WAIT_MS = 20_000


def test_a_lapsed_access_cookie_loses_neither_the_form_nor_the_message(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "lee@example.com"
    port = free_port()
    with (
        upstream_in_a_thread() as (upstream, _),
        served(
            tmp_path / "server",
            port=port,
            BACKLINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
            BACKLINE_DATABASE_URL=served_database,
            BACKLINE_CHAT_BASE_URL=upstream.url,
            BACKLINE_CHAT_MODEL="test-model",
        ) as server,
    ):
        make_account(server, email, "artist", served_database)
        context = browser.new_context()
        page = context.new_page()
        log_in(page, server.url, email, DEFAULT_PASSWORD)
        refreshes = [c for c in context.cookies() if c["name"] == "backline_refresh"]
        assert [c["path"] for c in refreshes] == ["/"]

        page.get_by_role("link", name="Tax form").click()
        context.clear_cookies(name="backline_access")  # a long while spent on the form
        fill_w9(page, postal_code="11201")
        page.wait_for_url("**/tax?saved=1")
        assert page.locator("#masked-tin").is_visible()
        assert any(c["name"] == "backline_access" for c in context.cookies())

        context.clear_cookies(name="backline_access")
        page.goto(server.url + "/chat")
        assert page.get_by_role("button", name="Sign out").is_visible()

        context.clear_cookies(name="backline_access")  # the chat page left open a while
        page.get_by_label("Your message").fill("Still there?")
        page.get_by_role("button", name="Send").click()
        page.get_by_text("Answered.").wait_for(timeout=WAIT_MS)
        assert page.locator(".turn.assistant .text").text_content() == "Hello, artist!"
        assert page.url.startswith(server.url + "/chat/")
        assert upstream.seen[-1].body["stream"] is True
        context.close()


def test_an_upload_started_with_an_expired_access_token_renews_and_lands(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "ray@example.com"
    key = secrets.token_urlsafe(48)
    port = free_port()
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        BACKLINE_DATABASE_URL=served_database,
        BACKLINE_SECRET_KEY=key,
    ) as server:
        make_account(server, email, "artist", served_database)
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        context.add_init_script(WATCH_PROGRESS)
        page = context.new_page()
        log_in(page, server.url, email, DEFAULT_PASSWORD)
        page.goto(server.url + "/tracks")
        page.get_by_label("Title").fill("Night Bus")
        page.get_by_role("button", name="Start the draft").click()
        page.get_by_role("link", name="Night Bus").click()
        page.wait_for_url("**/tracks/*")

        answers: list[tuple[str, str, int]] = []
        page.on("response", lambda r: answers.append((r.request.method, r.url, r.status)))
        lapsed = expire_access(context, key.encode())  # the page was left open a while
        upload_with_progress(page, [], "audio", write_wav(tmp_path / "night-bus.wav", seconds=5))
        api = [(method, url.removeprefix(server.url), status) for method, url, status in answers]
        track = page.url.removeprefix(server.url + "/tracks/").partition("?")[0]
        assert [a for a in api if a[1].startswith("/api/")] == [
            ("PUT", f"/api/tracks/{track}/audio", 401),
            ("POST", "/api/auth/refresh", 200),
            ("PUT", f"/api/tracks/{track}/audio", 200),
        ]
        assert page.locator("#audio-facts").is_visible()
        access = [c["value"] for c in context.cookies() if c["name"] == "backline_access"]
        assert access
        assert access != [lapsed]
        context.close()
