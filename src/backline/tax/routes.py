"""Tax form endpoints: `/api/me/tax-form` for the artist, `/api/admin/users/{id}/tax-form` for
staff (masked) and admins (reveal, audited)."""

from __future__ import annotations

import uuid

from fastapi import Request

from backline.accounts.deps import CurrentUser, CurrentUserId, RequireRole
from backline.apidoc.declare import raises
from backline.context import client_info
from backline.deps import EnginesDep, SessionDep, SettingsDep
from backline.routing import router
from backline.tax import service as tax
from backline.tax.schemas import RevealedTin, TaxFormIn, TaxFormPublic, TaxFormStaff

me_router = router(prefix="/api/me/tax-form", tags=["tax"])
staff_router = router(prefix="/api/admin/users", tags=["tax"], dependencies=[RequireRole("staff")])


@me_router.put("", dependencies=[RequireRole("artist")])
@raises(
    (422, "invalid_tin"),
    (422, "not_certified"),
    (422, "signature_mismatch"),
    (409, "concurrent_submission"),
)
async def submit_tax_form(
    body: TaxFormIn,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> TaxFormPublic:
    """Submit a W-9; it supersedes the current one, which is kept for the retention period."""
    form = await tax.submit(
        session, ring=settings.key_ring, user=user, data=body, client=client_info(request)
    )
    return tax.public(settings.key_ring, form)


@me_router.get("")
@raises((404, "no_tax_form"))
async def get_tax_form(
    user_id: CurrentUserId, engines: EnginesDep, settings: SettingsDep
) -> TaxFormPublic:
    # One read on a bare autocommit connection, like `GET /api/me`.
    async with engines.autocommit.connect() as connection:
        row = await tax.current_view(connection, user_id=user_id)
    return tax.public(settings.key_ring, row)


@staff_router.get("/{user_id}/tax-form")
@raises((404, "no_tax_form"))
async def staff_tax_form(
    user_id: uuid.UUID, session: SessionDep, settings: SettingsDep
) -> TaxFormStaff:
    return tax.for_staff(settings.key_ring, await tax.current(session, user_id=user_id))


@staff_router.post("/{user_id}/tax-form/reveal", dependencies=[RequireRole("admin")])
@raises((404, "no_tax_form"))
async def reveal_tin(
    user_id: uuid.UUID,
    request: Request,
    admin: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> RevealedTin:
    """The full TIN; each reveal is recorded in the audit log (who, whose, when, request)."""
    return await tax.reveal(
        session, ring=settings.key_ring, admin=admin, user_id=user_id, client=client_info(request)
    )
