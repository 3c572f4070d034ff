"""The account page: change the password (other sessions signed out), change the email address
(a link to the new one), export my data, delete the account; each form's refusals beside its
fields, and forged posts refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.app import Backline
from tests.accounts.conftest import PASSWORD, outbox
from tests.web.pages import FOREIGN, ORIGIN, csrf_in, log_in, new_client, post_login

NEW_PASSWORD = "amber meadow compass 17"


async def signed_in(portal: httpx.AsyncClient, make_user: Any) -> str:
    await make_user()
    await log_in(portal)
    return csrf_in((await portal.get("/account")).text)


async def post(portal: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    return await portal.post(path, data=data, headers={"Origin": ORIGIN})


async def test_a_password_change_signs_out_the_other_sessions_only(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    token = await signed_in(portal, make_user)
    async with new_client(app) as other:
        await log_in(other)
        assert (await other.get("/dashboard")).status_code == 200
        changed = await post(
            portal, "/account/password", csrf_token=token, current_password=PASSWORD,
            new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD,
        )  # fmt: skip
        assert changed.status_code == 200
        assert "1 other session was signed out" in changed.text
        gone = await other.get("/dashboard")
        assert gone.status_code == 303
        assert gone.headers["location"] == "/login"
    assert (await portal.get("/dashboard")).status_code == 200
    assert (await post_login(portal, "ann@example.com", PASSWORD)).status_code == 401
    assert (await post_login(portal, "ann@example.com", NEW_PASSWORD)).status_code == 303


async def test_password_change_refusals_are_beside_their_fields(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await signed_in(portal, make_user)
    cases = {
        "confirm_password": (422, PASSWORD, NEW_PASSWORD, "something else entirely"),
        "current_password": (403, "not the password", NEW_PASSWORD, NEW_PASSWORD),
        "new_password": (422, PASSWORD, "short", "short"),
    }
    for field, (status, current, new, again) in cases.items():
        refused = await post(
            portal, "/account/password", csrf_token=token, current_password=current,
            new_password=new, confirm_password=again,
        )  # fmt: skip
        assert refused.status_code == status, field
        assert f'id="{field}-error"' in refused.text, field
        assert 'aria-invalid="true"' in refused.text
        for typed in (current, new, again):
            assert f'value="{typed}"' not in refused.text  # passwords are never written back
    assert (await post_login(portal, "ann@example.com", PASSWORD)).status_code == 303


async def test_wrong_current_passwords_count_toward_the_lockout(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await signed_in(portal, make_user)
    for _ in range(3):  # the test settings' lockout threshold
        await post(portal, "/account/delete", csrf_token=token, delete_password="wrong")
    locked = await post(portal, "/account/delete", csrf_token=token, delete_password=PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert 'id="delete_password-error"' in locked.text
    assert (await portal.get("/dashboard")).status_code == 200


async def test_an_email_change_mails_a_link_to_the_new_address(
    portal: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    token = await signed_in(portal, make_user)
    cases = [
        ("email", "", PASSWORD, 422),
        ("email", "ANN@example.com", PASSWORD, 422),  # the address it has already
        ("email_password", "new@example.com", "not the password", 403),
    ]
    for field, address, password, status in cases:
        refused = await post(
            portal, "/account/email", csrf_token=token, email=address, email_password=password
        )
        assert refused.status_code == status, field
        assert f'id="{field}-error"' in refused.text, field
        assert f'value="{password}"' not in refused.text
    kept = await post(
        portal, "/account/email", csrf_token=token, email="not an address", email_password=PASSWORD
    )
    assert kept.status_code == 422
    assert 'id="email-error"' in kept.text
    assert 'value="not an address"' in kept.text
    assert await outbox(engine, "verify_email") == []
    sent = await post(
        portal, "/account/email", csrf_token=token, email="new@example.com",
        email_password=PASSWORD,
    )  # fmt: skip
    assert sent.status_code == 200
    assert 'role="status"' in sent.text
    [link] = await outbox(engine, "verify_email")
    assert link.to_address == "new@example.com"
    assert [m.to_address for m in await outbox(engine, "email_change_requested")] == [
        "ann@example.com"
    ]
    # Nothing changes until the new address is confirmed.
    assert "ann@example.com" in (await portal.get("/account")).text


async def test_the_export_is_a_download_of_the_apis_json(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await signed_in(portal, make_user)
    page = await portal.get("/account")
    assert 'href="/account/export"' in page.text
    exported = await portal.get("/account/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert exported.headers["content-disposition"].startswith("attachment")
    assert exported.headers["cache-control"] == "no-store"
    data = json.loads(exported.text)
    assert "ann@example.com" in exported.text
    assert {"tax_form", "chat"} <= set(data)


async def test_deleting_the_account_needs_the_password_and_signs_out(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await signed_in(portal, make_user)
    refused = await post(portal, "/account/delete", csrf_token=token, delete_password="wrong")
    assert refused.status_code == 403
    assert 'id="delete_password-error"' in refused.text
    empty = await post(portal, "/account/delete", csrf_token=token, delete_password="")
    assert empty.status_code == 422
    assert 'id="delete_password-error"' in empty.text
    assert (await portal.get("/dashboard")).status_code == 200
    deleted = await post(portal, "/account/delete", csrf_token=token, delete_password=PASSWORD)
    assert deleted.status_code == 200
    assert "Your account is deleted" in deleted.text
    assert 'backline_access=""' in deleted.headers.get("set-cookie", "")
    assert (await portal.get("/dashboard")).status_code == 303
    assert (await post_login(portal, "ann@example.com", PASSWORD)).status_code == 401


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                               "confirm_password": NEW_PASSWORD}),
        ("/account/email", {"email": "new@example.com", "email_password": PASSWORD}),
        ("/account/delete", {"delete_password": PASSWORD}),
        ("/tax", {"legal_name": "Ann"}),
        ("/chat", {"message": "Hello"}),
        ("/chat/00000000-0000-4000-8000-000000000000/rename", {"title": "Forged"}),
        ("/chat/00000000-0000-4000-8000-000000000000/delete", {}),
    ],
    ids=["password", "email", "delete", "tax", "chat", "chat-rename", "chat-delete"],
)  # fmt: skip
async def test_a_forged_cross_site_post_is_refused(
    portal: httpx.AsyncClient, make_user: Any, engine: AsyncEngine, path: str,
    fields: dict[str, str],
) -> None:  # fmt: skip
    token = await signed_in(portal, make_user)
    forged = {
        "foreign origin": ({**fields, "csrf_token": token}, {"Origin": FOREIGN}),
        "no token": (fields, {"Origin": ORIGIN}),
        "wrong token": ({**fields, "csrf_token": "x" * 43}, {"Origin": ORIGIN}),
    }
    for name, (data, headers) in forged.items():
        refused = await portal.post(path, data=data, headers=headers)
        assert refused.status_code == 403, name
        assert refused.json()["code"] == "csrf_failed", name
    assert (await portal.get("/dashboard")).status_code == 200
    assert await outbox(engine, "verify_email") == []
    assert (await post_login(portal, "ann@example.com", PASSWORD)).status_code == 303
