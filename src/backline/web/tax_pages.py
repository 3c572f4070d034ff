"""Portal page for the tax form (W-9): `/tax`.

The form is checked by the API's own `TaxFormIn` and stored through `tax.service.submit`, so the
page and `PUT /api/me/tax-form` refuse the same things. The TIN is handled like a password: it is
never written back into the form, not even after a refusal, and the page shows only its masked
form (`***-**-1234`) once saved.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from backline.accounts.models import Role, User
from backline.config import Settings
from backline.context import client_info
from backline.db import Engines
from backline.deps import EnginesDep, SessionDep, SettingsDep
from backline.errors import NotFound, ProblemError
from backline.routing import router
from backline.tax import service as tax
from backline.tax.models import Classification
from backline.tax.schemas import EXEMPT_PAYEE_CODES, FATCA_CODES, STATES, TaxFormIn, TaxFormPublic
from backline.web.render import page
from backline.web.viewer import Viewer, checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)
TEXT_FIELDS = (
    "legal_name", "business_name", "federal_tax_classification", "other_description",
    "exempt_payee_code", "fatca_code", "address_line1", "address_line2", "city", "state",
    "postal_code", "tin_type", "signature_name",
)  # fmt: skip
OPTIONAL = frozenset(
    {"business_name", "other_description", "exempt_payee_code", "fatca_code", "address_line2"}
)
# Which field a refusal from the tax service is about.
FIELD_OF = {
    "invalid_tin": "tin",
    "not_certified": "certify",
    "signature_mismatch": "signature_name",
}
# Clearer words than the schema's patterns for the fields people most often get wrong.
WORDING = {
    "state": "Choose the state or territory of the address.",
    "postal_code": "A ZIP code has 5 digits, or 5 and 4 (12345-6789).",
    "federal_tax_classification": "Choose a federal tax classification.",
    "tin_type": "Say whether the number is an SSN or an EIN.",
}
OTHER_REQUIRED = "Describe the classification when you choose Other"
OTHER_ONLY = "Leave the description empty unless the classification is Other"
# The service's own words for these speak of the API's fields.
SERVICE_WORDING = {"not_certified": "Tick the box to certify the statements above."}
CLASSIFICATIONS = {
    Classification.INDIVIDUAL: "Individual or sole proprietor",
    Classification.C_CORPORATION: "C corporation",
    Classification.S_CORPORATION: "S corporation",
    Classification.PARTNERSHIP: "Partnership",
    Classification.TRUST_ESTATE: "Trust or estate",
    Classification.LLC_C: "LLC taxed as a C corporation",
    Classification.LLC_S: "LLC taxed as an S corporation",
    Classification.LLC_P: "LLC taxed as a partnership",
    Classification.OTHER: "Other",
}


def _pairs(codes: Any) -> list[tuple[str, str]]:
    return [(code, code) for code in codes]


def _errors(exc: ValidationError) -> dict[str, str]:
    """The first message for each field; the form-wide checks name their field first."""
    found: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else message.split(" ", 1)[0]
        if field not in TEXT_FIELDS and field not in ("tin", "certify"):
            field = "form"
        if field == "other_description" and not error["loc"]:
            message = OTHER_REQUIRED if "required" in message else OTHER_ONLY
        elif error["type"] == "string_too_short":
            message = "Fill this in"
        found.setdefault(field, WORDING.get(field) or message[:1].upper() + message[1:] + ".")
    return found


def _tax_page(
    viewer: Viewer, current: TaxFormPublic | None, status: int = 200, **context: Any
) -> HTMLResponse:
    context.setdefault("values", _values_of(current))
    return page(
        "tax.html", status, title="Tax form (W-9)", viewer=viewer, current=current,
        can_submit=viewer.user.role == Role.ARTIST, classifications=CLASSIFICATIONS,
        states=_pairs(sorted(STATES)), payee_codes=_pairs(EXEMPT_PAYEE_CODES),
        fatca_codes=_pairs(FATCA_CODES), **context,
    )  # fmt: skip


def _values_of(current: TaxFormPublic | None) -> dict[str, str]:
    """The saved form's fields to start a new one from: never the TIN."""
    if current is None:
        return {"tin_type": "ssn"}
    saved = current.model_dump(mode="json")
    return {k: str(saved[k]) for k in TEXT_FIELDS if saved.get(k) is not None}


async def _current(engines: Engines, settings: Settings, viewer: Viewer) -> TaxFormPublic | None:
    async with engines.autocommit.connect() as connection:
        try:
            row = await tax.current_view(connection, user_id=viewer.user.id)
        except NotFound:
            return None
    return tax.public(settings.key_ring, row)


@pages.get("/tax", response_class=HTMLResponse)
async def tax_page(request: Request, engines: EnginesDep, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    saved = request.query_params.get("saved") == "1"
    notice = "Your tax form is saved." if saved else None
    return _tax_page(viewer, await _current(engines, settings, viewer), notice=notice)


@pages.post("/tax", response_class=HTMLResponse)
async def submit(
    request: Request, session: SessionDep, engines: EnginesDep, settings: SettingsDep
) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    form = await checked_form(request, viewer)
    values = {k: form.get(k, "")[:400] for k in TEXT_FIELDS}
    data: dict[str, Any] = {
        k: (v.strip() or None) if k in OPTIONAL else v for k, v in values.items()
    }
    data["state"] = values["state"].strip().upper()
    data["tin"] = form.get("tin", "")[:40]
    data["certify"] = form.get("certify") == "yes"
    current = await _current(engines, settings, viewer)
    again = {"values": values, "certified": data["certify"]}
    if viewer.user.role != Role.ARTIST:  # as `PUT /api/me/tax-form` refuses, before anything
        return _tax_page(viewer, current, 403, error="The tax form is for artists.", **again)
    try:
        body = TaxFormIn.model_validate(data)
    except ValidationError as exc:
        errors = _errors(exc)
        return _tax_page(
            viewer, current, 422, errors=errors, error=errors.pop("form", None), **again
        )
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    try:
        await tax.submit(
            session, ring=settings.key_ring, user=user, data=body, client=client_info(request)
        )
    except ProblemError as exc:
        await session.rollback()
        field = FIELD_OF.get(exc.code)
        errors = {field: SERVICE_WORDING.get(exc.code, exc.detail)} if field else {}
        error = None if field else exc.detail
        return _tax_page(viewer, current, exc.status, errors=errors, error=error, **again)
    return RedirectResponse("/tax?saved=1", status_code=303)
