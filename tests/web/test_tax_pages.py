"""The tax form page: the API's refusals beside each field with what was typed kept (never the
TIN), the saved form shown with the TIN masked, and the form for artists only."""

from __future__ import annotations

import re
from typing import Any

import httpx

from backline.accounts.models import Role
from tests.tax.conftest import SSN, SSN_DIGITS
from tests.web.pages import ORIGIN, csrf_in, log_in


def form(token: str, **changes: str | None) -> dict[str, str]:
    fields: dict[str, str | None] = {
        "csrf_token": token,
        "legal_name": "Ann Marie O'Neil",
        "business_name": "",
        "federal_tax_classification": "individual",
        "other_description": "",
        "exempt_payee_code": "",
        "fatca_code": "",
        "address_line1": "12 Harbor St",
        "address_line2": "Apt 4",
        "city": "Brooklyn",
        "state": "NY",
        "postal_code": "11201-1234",
        "tin_type": "ssn",
        "tin": SSN,
        "signature_name": "ann marie oneil",
        "certify": "yes",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


async def artist(portal: httpx.AsyncClient, make_user: Any) -> str:
    await make_user(role=Role.ARTIST)
    await log_in(portal)
    return csrf_in((await portal.get("/tax")).text)


def tin_field(html: str) -> str:
    match = re.search(r'<input id="tin"[^>]*>', html)
    assert match, html
    return match.group(0)


async def test_schema_refusals_are_shown_beside_their_fields_keeping_all_but_the_tin(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await artist(portal, make_user)
    refused = await portal.post(
        "/tax",
        data=form(token, postal_code="ABCDE", state="", legal_name="", city="Springfield"),
        headers={"Origin": ORIGIN},
    )
    assert refused.status_code == 422
    html = refused.text
    for field in ("postal_code", "state", "legal_name"):
        assert f'id="{field}-error"' in html, field
        assert f'aria-describedby="{field}-error"' in html or f"{field}-hint {field}-error" in html
    assert "A ZIP code has 5 digits" in html
    assert "Fill this in." in html  # the legal name
    assert 'value="Springfield"' in html
    assert 'value="ABCDE"' in html
    assert SSN not in html
    assert SSN_DIGITS not in html
    assert "value=" not in tin_field(html)


async def test_form_wide_and_service_refusals_name_their_field(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await artist(portal, make_user)
    cases = {
        "tin": {"tin": "078-05-1120"},
        "signature_name": {"signature_name": "Somebody Else"},
        "certify": {"certify": None},
        "other_description": {"federal_tax_classification": "other"},
        "state": {"state": "ZZ"},
    }
    for field, changes in cases.items():
        refused = await portal.post("/tax", data=form(token, **changes), headers={"Origin": ORIGIN})
        assert refused.status_code == 422, field
        assert f'id="{field}-error"' in refused.text, field
        assert "078051120" not in refused.text
        assert "078-05-1120" not in refused.text
        assert "value=" not in tin_field(refused.text)
    assert 'id="masked-tin"' not in (await portal.get("/tax")).text


async def test_a_saved_form_is_shown_with_the_tin_masked(
    portal: httpx.AsyncClient, make_user: Any
) -> None:
    token = await artist(portal, make_user)
    saved = await portal.post("/tax", data=form(token), headers={"Origin": ORIGIN})
    assert saved.status_code == 303
    assert saved.headers["location"] == "/tax?saved=1"
    shown = await portal.get("/tax?saved=1")
    assert re.search(r'id="masked-tin">\*\*\*-\*\*-7386<', shown.text)
    assert SSN not in shown.text
    assert SSN_DIGITS not in shown.text
    assert "value=" not in tin_field(shown.text)
    # A new form starts from the saved one: the address is filled in, the TIN is not.
    assert 'value="12 Harbor St"' in shown.text
    assert shown.headers["cache-control"] == "no-store"


async def test_the_form_is_for_artists(portal: httpx.AsyncClient, make_user: Any) -> None:
    await make_user(role=Role.USER)
    await log_in(portal)
    shown = await portal.get("/tax")
    assert "opens once your artist application is approved" in shown.text
    refused = await portal.post("/tax", data=form(csrf_in(shown.text)), headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    assert SSN not in refused.text
    assert 'id="masked-tin"' not in (await portal.get("/tax")).text


async def test_signed_out_the_page_leads_to_log_in(portal: httpx.AsyncClient) -> None:
    shown = await portal.get("/tax")
    assert shown.status_code == 303
    assert shown.headers["location"] == "/login"
