"""The artist application page: the API's rules and errors, shown beside the fields."""

from __future__ import annotations

from typing import Any

import httpx

from tests.web.pages import ORIGIN, csrf_in, log_in


async def test_the_application_form_shows_the_apis_errors_beside_the_fields(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    await log_in(portal)
    token = csrf_in((await portal.get("/apply")).text)
    answer = await portal.post(
        "/apply",
        data={"artist_name": "Ann & Co", "bio": "Songs.", "country": "ZZ", "csrf_token": token},
        headers={"Origin": ORIGIN},
    )
    assert answer.status_code == 422
    assert 'id="country-error"' in answer.text
    assert 'aria-describedby="country-hint country-error" aria-invalid="true"' in answer.text
    assert 'value="Ann &amp; Co"' in answer.text  # kept, and escaped
    assert 'role="alert"' in answer.text
