"""The assistant's page in a real browser: the answer appears as the provider streams it; the
conversation is renamed; with JavaScript off the form gets the whole answer.

The stand-in provider (`tests.chat.upstream`) runs on a loop of its own in a thread, since
Playwright's sync API holds the test's. It sends the first chunks of the answer, then waits at
a gate the test opens only once the page shows those chunks: the page must show part of the
answer before the rest exists. No timing is measured.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.chat.upstream import Plan, Upstream, serve
from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import served
from tests.web.browser import shoot, watch_csp
from tests.web.test_journey import checked, visit
from tests.web.test_journey_account import log_in, make_account

pytestmark = pytest.mark.slow
FIRST, REST = ["Royalties ", "are paid "], ["monthly, ", "once your ", "tax form is saved."]
WAIT_MS = 20_000


@contextmanager
def upstream_in_a_thread() -> Iterator[tuple[Upstream, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    running: dict[str, Any] = {}

    async def main() -> None:
        provider = Upstream()
        server, task = await serve(provider, free_port())
        running.update(provider=provider, server=server)
        started.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30), "the stand-in provider did not start"
    try:
        yield running["provider"], loop
    finally:
        running["server"].should_exit = True
        thread.join(30)
        loop.close()


def test_the_answer_appears_as_it_streams(
    served_database: str, browser: Any, tmp_path: Path
) -> None:
    email = "nova@example.com"
    shots = Path(os.environ.get("BACKLINE_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    released = asyncio.Event()  # waited on by the stand-in's loop, set from this thread
    port = free_port()

    with (
        upstream_in_a_thread() as (upstream, upstream_loop),
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
        upstream.then(Plan(tokens=FIRST + REST, gate=released.wait, gate_at=len(FIRST)))
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        csp = watch_csp(page)
        log_in(page, server.url, email, DEFAULT_PASSWORD)
        page.get_by_role("link", name="Assistant").click()
        checked(page, csp)

        page.get_by_label("Your message").fill("When do I get paid?")
        page.get_by_role("button", name="Send").click()
        answer = page.locator(".turn.assistant .text")
        partial = "".join(FIRST)
        page.wait_for_function(
            "text => document.querySelector('.turn.assistant .text')?.textContent === text",
            arg=partial,
            timeout=WAIT_MS,
        )
        # Part of the answer is on the page while the provider still holds the rest.
        assert answer.text_content() == partial
        assert page.locator(".turn.assistant").get_attribute("aria-busy") == "true"
        assert page.locator(".turn.user .text").text_content() == "When do I get paid?"
        checked(page, csp)
        upstream_loop.call_soon_threadsafe(released.set)
        whole = partial + "".join(REST)
        page.wait_for_function(
            "text => document.querySelector('.turn.assistant .text')?.textContent === text",
            arg=whole,
            timeout=WAIT_MS,
        )
        page.get_by_text("Answered.").wait_for(timeout=WAIT_MS)
        assert page.url.startswith(server.url + "/chat/")
        assert upstream.seen[-1].body["stream"] is True
        checked(page, csp)

        # The stored conversation, as the server renders it.
        visit(page, page.url, csp)
        assert page.locator(".turn.assistant .text").text_content() == whole
        assert page.get_by_role("link", name="When do I get paid?").is_visible()
        shoot(page, shots, "chat")

        page.get_by_text("Rename or delete this conversation").click()
        page.get_by_label("Title").fill(" ")
        page.get_by_role("button", name="Rename").click()
        assert page.locator("#title-error").is_visible()
        checked(page, csp)
        page.get_by_label("Title").fill("Getting paid")
        page.get_by_role("button", name="Rename").click()
        assert page.get_by_role("heading", name="Getting paid").is_visible()
        context.close()

        # With JavaScript off the form posts, and the page shows the whole answer.
        still = browser.new_context(java_script_enabled=False)
        plain = still.new_page()
        log_in(plain, server.url, email, DEFAULT_PASSWORD)
        plain.goto(server.url + "/chat")  # axe-core needs scripts: checked above with them on
        plain.get_by_label("Your message").fill("Is this thing on?")
        plain.get_by_role("button", name="Send").click()
        plain.wait_for_url("**/chat/*")
        assert plain.locator(".turn.assistant .text").text_content() == "Hello, artist!"
        assert upstream.seen[-1].body.get("stream") in (None, False)
        still.close()
