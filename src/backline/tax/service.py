"""Tax form rules: submitting a W-9, reading it back masked, revealing a TIN, purging.

Functions take the caller's session and never commit. A submission is checked in full before
anything is written (certification, signature, TIN), then supersedes the person's current form
in the same transaction, so a refusal leaves nothing half-written.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backline.accounts.models import User
from backline.audit import service as audit
from backline.context import ClientInfo
from backline.crypto import KeyRing
from backline.db import utcnow
from backline.errors import Conflict, NotFound, Unprocessable
from backline.logging import get_logger
from backline.tax import tin as tins
from backline.tax.models import Classification, TaxForm, TinType
from backline.tax.schemas import RevealedTin, TaxFormIn, TaxFormPublic, TaxFormStaff

# The certification text (W-9 Rev. March 2024, Part II) the person accepts by submitting.
CERTIFICATION_VERSION = "w9-2024-03"
# Only these may furnish an SSN; every entity classification is identified by its EIN.
SSN_ALLOWED = frozenset({Classification.INDIVIDUAL, Classification.OTHER})
TABLE = TaxForm.__tablename__
log = get_logger(__name__)


def _loose(name: str) -> str:
    """A name compared without case, spacing or punctuation: "O'Neil, Ann" ~ "oneil ann"."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def _checked(data: TaxFormIn) -> str:
    """The TIN's nine digits once every rule of the form holds; a 4xx problem otherwise."""
    if data.certify is not True:
        raise Unprocessable(
            "Certify the statements of the form (certify: true) to submit it.",
            code="not_certified",
        )
    if _loose(data.signature_name) != _loose(data.legal_name):
        raise Unprocessable(
            "The signature must be the legal name as entered on the form.",
            code="signature_mismatch",
        )
    digits = tins.check(data.tin_type, data.tin)
    if data.tin_type == TinType.SSN and data.federal_tax_classification not in SSN_ALLOWED:
        raise tins.InvalidTin(
            "This classification is identified by an EIN, not an SSN: give the entity's EIN."
        )
    return digits


def _seal(ring: KeyRing, form_id: uuid.UUID, column: str, text: str) -> bytes:
    return ring.seal(text, table=TABLE, column=column, row_id=form_id)


def _open(ring: KeyRing, form: TaxForm | Row[Any], column: str) -> str:
    sealed: bytes = getattr(form, column)
    return ring.open(sealed, table=TABLE, column=column, row_id=form.id)


async def submit(
    session: AsyncSession, *, ring: KeyRing, user: User, data: TaxFormIn, client: ClientInfo
) -> TaxForm:
    """Store a new W-9 for `user`, superseding their current one (which is kept)."""
    digits = _checked(data)
    now = utcnow()
    # Serialises two submissions by one person (PostgreSQL; SQLite has one writer anyway).
    await session.execute(select(User.id).where(User.id == user.id).with_for_update())
    await session.execute(
        update(TaxForm)
        .where(TaxForm.user_id == user.id, TaxForm.superseded_at.is_(None))
        .values(superseded_at=now)
    )
    details = data.model_dump(
        exclude={"tin", "tin_type", "certify", "federal_tax_classification", "state"}
    )
    details.update(signed_ip=client.ip, signed_user_agent=client.user_agent)
    form_id = uuid.uuid4()
    form = TaxForm(
        id=form_id,
        user_id=user.id,
        created_at=now,
        tin_type=data.tin_type.value,
        tin_last4=digits[-4:],
        federal_tax_classification=data.federal_tax_classification.value,
        state=data.state,
        certification_version=CERTIFICATION_VERSION,
        tin=_seal(ring, form_id, "tin", digits),
        details=_seal(ring, form_id, "details", json.dumps(details)),
    )
    session.add(form)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "Another submission of this form was stored at the same moment; try again.",
            code="concurrent_submission",
        ) from None
    await audit.record(
        session, event="tax_form_submitted", user_id=user.id, client=client, form_id=str(form_id)
    )
    log.info("tax_form_submitted", form_id=str(form_id), tin_type=form.tin_type)
    return form


async def current(session: AsyncSession, *, user_id: uuid.UUID) -> TaxForm:
    form = await session.scalar(
        select(TaxForm).where(TaxForm.user_id == user_id, TaxForm.superseded_at.is_(None))
    )
    if form is None:
        raise NotFound("No tax form has been submitted.", code="no_tax_form")
    return form


_forms = TaxForm.__table__
# What the masked view reads (every column but the sealed TIN), built once on the table's
# columns: the owner's own read is the hot path, and skips the ORM's per-row work.
_CURRENT_VIEW = select(*[c for c in _forms.c if c.name != "tin"]).where(
    _forms.c.user_id == bindparam("user_id"), _forms.c.superseded_at.is_(None)
)


async def current_view(connection: AsyncConnection, *, user_id: uuid.UUID) -> Row[Any]:
    """The current form's columns for a masked view, in one Core statement."""
    row = (await connection.execute(_CURRENT_VIEW, {"user_id": user_id})).first()
    if row is None:
        raise NotFound("No tax form has been submitted.", code="no_tax_form")
    return row


def _fields(ring: KeyRing, form: TaxForm | Row[Any]) -> dict[str, Any]:
    details: dict[str, Any] = json.loads(_open(ring, form, "details"))
    return {
        **details,
        "id": form.id,
        "federal_tax_classification": form.federal_tax_classification,
        "state": form.state,
        "tin_type": form.tin_type,
        "tin": tins.masked(form.tin_type, form.tin_last4),
        "signed_at": form.created_at,
        "certification_version": form.certification_version,
    }


def public(ring: KeyRing, form: TaxForm | Row[Any]) -> TaxFormPublic:
    """The form as its owner sees it: every field, the TIN masked."""
    return TaxFormPublic.model_validate(_fields(ring, form))


def for_staff(ring: KeyRing, form: TaxForm) -> TaxFormStaff:
    return TaxFormStaff.model_validate({**_fields(ring, form), "user_id": form.user_id})


async def reveal(
    session: AsyncSession, *, ring: KeyRing, admin: User, user_id: uuid.UUID, client: ClientInfo
) -> RevealedTin:
    """The full TIN of `user_id`'s current form, recorded in the audit log first."""
    form = await current(session, user_id=user_id)
    digits = _open(ring, form, "tin")
    await audit.record(
        session,
        event="tax_tin_revealed",
        user_id=user_id,
        actor_id=admin.id,
        client=client,
        form_id=str(form.id),
    )
    return RevealedTin(
        form_id=form.id, tin_type=TinType(form.tin_type), tin=tins.formatted(form.tin_type, digits)
    )


def retention_cutoff(now: datetime, years: int) -> datetime:
    """`years` before `now` (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


async def purge(session: AsyncSession, *, years: int, now: datetime | None = None) -> int:
    """Delete the forms superseded more than `years` ago; how many went."""
    cutoff = retention_cutoff(now or utcnow(), years)
    result = await session.execute(
        delete(TaxForm).where(TaxForm.superseded_at < cutoff).returning(TaxForm.id)
    )
    return len(result.all())
