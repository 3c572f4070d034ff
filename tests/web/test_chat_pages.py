"""The assistant's pages with JavaScript off: a message posted as a form gets the whole answer
(as `stream: false`), conversations are listed, renamed and deleted, refusals are shown beside
the message box, and an unconfigured assistant is a calm notice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from tests.chat.conftest import CHAT_LIMITS
from tests.chat.upstream import Plan, Upstream, serve
from tests.conftest import free_port
from tests.web.pages import ORIGIN, csrf_in, log_in, new_client

CONVERSATION = re.compile(r"/chat/([0-9a-f-]{36})")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    provider = Upstream()
    server, task = await serve(provider, free_port())
    yield provider
    server.should_exit = True
    await task


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database_url: str, upstream: Upstream
) -> Settings:
    return make_settings(
        database_url=database_url, rate_limits=CHAT_LIMITS, chat_base_url=upstream.url,
        chat_model="test-model", chat_timeout=5.0, chat_max_message_chars=200,
    )  # fmt: skip


async def ask(portal: httpx.AsyncClient, token: str, message: str, **more: str) -> httpx.Response:
    data = {"csrf_token": token, "message": message, **more}
    return await portal.post("/chat", data=data, headers={"Origin": ORIGIN})


async def signed_in(portal: httpx.AsyncClient, make_user: Any) -> str:
    await make_user()
    await log_in(portal)
    return csrf_in((await portal.get("/chat")).text)


async def test_a_posted_message_gets_the_whole_answer(
    portal: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    token = await signed_in(portal, make_user)
    sent = await ask(portal, token, "How do I get paid?")
    assert sent.status_code == 303
    found = CONVERSATION.match(sent.headers["location"])
    assert found
    conversation = found.group(1)
    assert upstream.seen[-1].body.get("stream") in (None, False)
    shown = await portal.get(f"/chat/{conversation}")
    assert "How do I get paid?" in shown.text
    assert "Hello, artist!" in shown.text
    assert f'value="{conversation}"' in shown.text  # the form continues this conversation

    upstream.then(Plan(tokens=["Fill in ", "the tax form."]))
    again = await ask(portal, token, "And then?", conversation_id=conversation)
    assert again.headers["location"].startswith(f"/chat/{conversation}")
    shown = await portal.get(f"/chat/{conversation}")
    assert shown.text.count('class="turn user"') == 2
    assert "Fill in the tax form." in shown.text
    listed = await portal.get("/chat")
    assert listed.text.count(f'href="/chat/{conversation}"') == 1
    assert "How do I get paid?" in listed.text  # the title, from the first message


async def test_refusals_are_beside_the_message_box_which_keeps_the_message(
    portal: httpx.AsyncClient, make_user: Any, upstream: Upstream
) -> None:
    token = await signed_in(portal, make_user)
    empty = await ask(portal, token, "   ")
    assert empty.status_code == 422
    assert 'id="message-error"' in empty.text
    long = await ask(portal, token, "x" * 201)
    assert long.status_code == 422
    assert 'id="message-error"' in long.text
    assert "200 characters" in long.text
    upstream.then(Plan(status=500), Plan(status=500), Plan(status=500))
    failed = await ask(portal, token, "Is anyone there?")
    assert failed.status_code == 502
    assert 'role="alert"' in failed.text
    assert ">Is anyone there?</textarea>" in failed.text


async def test_a_conversation_is_renamed_and_deleted(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await signed_in(portal, make_user)
    sent = await ask(portal, token, "Tell me about ISRC codes")
    path = sent.headers["location"].partition("#")[0]
    form = {"csrf_token": token}
    blank = await portal.post(
        f"{path}/rename", data={**form, "title": "   "}, headers={"Origin": ORIGIN}
    )
    assert blank.status_code == 422
    assert 'id="title-error"' in blank.text
    renamed = await portal.post(
        f"{path}/rename", data={**form, "title": "  ISRC   notes "}, headers={"Origin": ORIGIN}
    )
    assert renamed.status_code == 303
    assert "<title>ISRC notes · Backline</title>" in (await portal.get(path)).text
    deleted = await portal.post(f"{path}/delete", data=form, headers={"Origin": ORIGIN})
    assert deleted.headers["location"] == "/chat"
    assert (await portal.get(path, headers={"Accept": "text/html"})).status_code == 404
    assert path not in (await portal.get("/chat")).text


async def test_another_persons_conversation_is_not_found(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    token = await signed_in(portal, make_user)
    path = (await ask(portal, token, "Mine")).headers["location"].partition("#")[0]
    await make_user("bob@example.com")
    async with new_client(app) as bob:
        await log_in(bob, "bob@example.com")
        bobs = csrf_in((await bob.get("/chat")).text)
        assert (await bob.get(path)).status_code == 404
        for action in ("rename", "delete"):
            refused = await bob.post(
                f"{path}/{action}", data={"csrf_token": bobs, "title": "Taken"},
                headers={"Origin": ORIGIN},
            )  # fmt: skip
            assert refused.status_code == 404, action
        answer = await ask(bob, bobs, "Into Ann's", conversation_id=path.rpartition("/")[2])
        assert answer.status_code == 404
    assert "<title>Mine · Backline</title>" in (await portal.get(path)).text


async def test_the_page_loads_its_script_as_a_module_file(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await signed_in(portal, make_user)
    html = (await portal.get("/chat")).text
    found = re.search(
        r'<script type="module" src="(/static/chat\.[0-9a-f]{12}\.js)"></script>', html
    )
    assert found
    assert "<script>" not in html
    assert "style=" not in html
    script = await portal.get(found.group(1))
    assert script.headers["content-type"].startswith("text/javascript")
    assert "immutable" in script.headers["cache-control"]
    assert "X-CSRF-Token" in script.text


async def test_without_a_provider_the_page_says_so_calmly(
    make_settings: Callable[..., Settings],
    app_factory: Callable[[Settings], Backline],
    database_url: str,
    make_user: Any,
) -> None:
    app = app_factory(make_settings(database_url=database_url, rate_limits=CHAT_LIMITS))
    await make_user()
    async with LifespanManager(app), new_client(app) as client:
        await log_in(client)
        shown = await client.get("/chat")
        assert shown.status_code == 200
        assert "not switched on" in shown.text
        assert 'id="ask"' not in shown.text
        sent = await ask(client, csrf_in(shown.text), "Hello?")
        assert sent.status_code == 503
        assert "not switched on" in sent.text
