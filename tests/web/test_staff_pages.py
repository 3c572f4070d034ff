"""Staff pages: for staff only, and the application queue's actions."""

from __future__ import annotations

import re
from typing import Any

import httpx

from backline.accounts.models import Role
from backline.app import Backline
from tests.web.pages import ORIGIN, csrf_in, log_in, new_client


async def test_staff_pages_are_for_staff(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    assert (await portal.get("/staff")).headers["location"] == "/login"
    await make_user()
    await log_in(portal)
    assert (await portal.get("/staff")).json()["code"] == "forbidden_role"
    shown = await portal.get("/staff", headers={"Accept": "text/html"})  # as a browser asks
    assert shown.status_code == 403
    assert shown.headers["content-type"].startswith("text/html")
    assert "forbidden_role" in shown.text
    await make_user("sam@example.com", role=Role.STAFF)
    async with new_client(app) as staff:
        await log_in(staff, "sam@example.com")
        assert (await staff.get("/staff")).status_code == 200


async def test_staff_reject_an_application_with_a_reason(
    portal: httpx.AsyncClient, make_user: Any, app: Backline
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/apply")).text)
    form = {"artist_name": "Ann", "bio": "Songs.", "csrf_token": token}
    assert (await portal.post("/apply", data=form, headers={"Origin": ORIGIN})).status_code == 303
    await make_user("sam@example.com", role=Role.STAFF)
    async with new_client(app) as staff:
        await log_in(staff, "sam@example.com")
        queue = (await staff.get("/staff")).text
        claim = re.search(r'action="(/staff/applications/[0-9a-f-]{36})/claim"', queue)
        assert claim
        sent = {"csrf_token": csrf_in(queue)}
        claimed = await staff.post(f"{claim.group(1)}/claim", data=sent, headers={"Origin": ORIGIN})
        assert claimed.status_code == 303
        short = await staff.post(
            f"{claim.group(1)}/reject", data={**sent, "reason": "no"}, headers={"Origin": ORIGIN}
        )
        assert short.status_code == 422
        assert 'role="alert"' in short.text
        rejected = await staff.post(
            f"{claim.group(1)}/reject",
            data={**sent, "reason": "Send us a recording first."},
            headers={"Origin": ORIGIN},
        )
        assert rejected.status_code == 303
        again = await staff.post(f"{claim.group(1)}/approve", data=sent, headers={"Origin": ORIGIN})
        assert again.status_code == 409  # the service's refusal, shown on the queue page
        assert 'role="alert"' in again.text
    mine = (await portal.get("/apply")).text
    assert "rejected" in mine
    assert "Send us a recording first." in mine
