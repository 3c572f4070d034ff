"""`/api/me/tax-form`: who may submit, what is refused and why, masking, history."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from tests.tax.conftest import EIN, SSN, forms, signed_in, w9

Person = tuple[str, dict[str, str]]


async def test_an_artist_submits_and_reads_back_the_form_masked(
    client: httpx.AsyncClient, artist: Person
) -> None:
    _, headers = artist
    response = await client.put("/api/me/tax-form", json=w9(), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tin"] == "***-**-7386"
    assert body["legal_name"] == "Ann Marie O'Neil"
    assert body["certification_version"] == "w9-2024-03"
    again = await client.get("/api/me/tax-form", headers=headers)
    assert again.json() == body
    ein = await client.put(
        "/api/me/tax-form",
        json=w9(federal_tax_classification="llc_p", tin_type="ein", tin=EIN, business_name="B"),
        headers=headers,
    )
    assert ein.status_code == 200, ein.text
    assert ein.json()["tin"] == "**-***8465"


async def test_only_artists_submit(client: httpx.AsyncClient, make_user: Any) -> None:
    _, headers = await signed_in(client, make_user, "fan@example.com", Role.USER)
    response = await client.put("/api/me/tax-form", json=w9(), headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden_role"
    assert (await client.get("/api/me/tax-form", headers=headers)).json()["code"] == "no_tax_form"


async def test_a_new_submission_supersedes_and_keeps_the_previous(
    client: httpx.AsyncClient, artist: Person, engine: AsyncEngine
) -> None:
    _, headers = artist
    await client.put("/api/me/tax-form", json=w9(), headers=headers)
    moved = w9(city="Queens", postal_code="11101")
    assert (await client.put("/api/me/tax-form", json=moved, headers=headers)).status_code == 200
    rows = await forms(engine)
    assert len(rows) == 2
    assert rows[0].superseded_at is not None
    assert rows[1].superseded_at is None
    assert (await client.get("/api/me/tax-form", headers=headers)).json()["city"] == "Queens"


async def test_concurrent_submissions_leave_one_current_form(
    client: httpx.AsyncClient, artist: Person, engine: AsyncEngine
) -> None:
    async def submit(n: int) -> int:
        form = w9(address_line2=f"Apt {n}")
        return (await client.put("/api/me/tax-form", json=form, headers=artist[1])).status_code

    statuses = await asyncio.gather(*(submit(n) for n in range(5)))
    assert set(statuses) <= {200, 409}
    rows = await forms(engine)
    assert len([f for f in rows if f.superseded_at is None]) == 1
    assert len(rows) == statuses.count(200)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"tin": "40152738"}, "has 9 digits; this has 8"),
        ({"tin": "4015273866"}, "has 9 digits; this has 10"),
        ({"tin": "401-52-738x"}, "digits only"),
        ({"tin": "000-52-7386"}, "area number"),
        ({"tin": "666-52-7386"}, "area number"),
        ({"tin": "901-52-7386"}, "area number"),
        ({"tin": "401-00-7386"}, "group number"),
        ({"tin": "401-52-0000"}, "serial number"),
        ({"tin": "078-05-1120"}, "known to be invalid"),
        ({"tin_type": "ein", "tin": "07-1938465"}, "prefix"),
        ({"tin_type": "ein", "tin": "27-193846"}, "has 9 digits; this has 8"),
        ({"federal_tax_classification": "c_corporation"}, "identified by an EIN"),
    ],
)
async def test_each_invalid_tin_is_refused_naming_its_rule(
    client: httpx.AsyncClient,
    artist: Person,
    engine: AsyncEngine,
    changes: dict[str, Any],
    reason: str,
) -> None:
    response = await client.put("/api/me/tax-form", json=w9(**changes), headers=artist[1])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_tin"
    assert reason in response.json()["detail"]
    if "tin" in changes:  # the refusal never repeats the number
        assert changes["tin"] not in response.text
    assert await forms(engine) == []


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"certify": False}, 422, "not_certified"),
        ({"certify": "yes"}, 422, "validation_failed"),
        ({"certify": 1}, 422, "validation_failed"),
        ({"signature_name": "Someone Else"}, 422, "signature_mismatch"),
        ({"federal_tax_classification": "sole_prop"}, 422, "validation_failed"),
        ({"federal_tax_classification": "other"}, 422, "validation_failed"),
        ({"other_description": "a club"}, 422, "validation_failed"),
        ({"tin_type": "itin"}, 422, "validation_failed"),
        ({"tin": 401527386}, 422, "validation_failed"),
        ({"exempt_payee_code": "14"}, 422, "validation_failed"),
        ({"exempt_payee_code": 5}, 422, "validation_failed"),
        ({"fatca_code": "N"}, 422, "validation_failed"),
        ({"state": "XX"}, 422, "validation_failed"),
        ({"state": "ny"}, 422, "validation_failed"),
        ({"postal_code": "1120"}, 422, "validation_failed"),
        ({"legal_name": ""}, 422, "validation_failed"),
        ({"city": "Brook\x00lyn"}, 422, "nul_character"),
        ({"surprise": 1}, 422, "validation_failed"),
    ],
)
async def test_bad_input_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient,
    artist: Person,
    engine: AsyncEngine,
    changes: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await client.put("/api/me/tax-form", json=w9(**changes), headers=artist[1])
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert "7386" not in response.text
    assert await forms(engine) == []


async def test_accepted_codes_and_classifications(
    client: httpx.AsyncClient, artist: Person
) -> None:
    form = w9(
        federal_tax_classification="other",
        other_description="Unincorporated association",
        exempt_payee_code="13",
        fatca_code="M",
        state="PR",
        postal_code="00901",
    )
    response = await client.put("/api/me/tax-form", json=form, headers=artist[1])
    assert response.status_code == 200, response.text
    assert response.json()["other_description"] == "Unincorporated association"
    assert response.json()["fatca_code"] == "M"


async def test_not_json_and_not_signed_in(client: httpx.AsyncClient, artist: Person) -> None:
    assert (await client.put("/api/me/tax-form", json=w9())).status_code == 401
    response = await client.put(
        "/api/me/tax-form",
        content=f"tin={SSN}",
        headers={**artist[1], "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
