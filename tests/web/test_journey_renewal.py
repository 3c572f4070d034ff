"""Staying signed in, in a real browser: once the access cookie has lapsed (the browser drops it
when its Max-Age runs out; here it is removed, as a served app's clock cannot be moved), a long
W-9 is still saved, a page still shows the person signed in, and a chat message sent from a
page left open is still answered, as it streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import served
from tests.web.test_journey_account import fill_w9, log_in, make_account
from tests.web.test_journey_chat import upstream_in_a_thread

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
