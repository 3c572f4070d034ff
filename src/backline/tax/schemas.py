"""The W-9 as the API takes it (`TaxFormIn`, flat fields) and shows it (`TaxFormPublic`).

Fields follow IRS Form W-9 (Rev. March 2024). The input is strict: a value of the wrong type
is refused, not converted (`"yes"` is not `true`), and unknown fields are refused. The TIN's
own rules are checked by `tax.tin`; the signature against the legal name by the service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from backline.tax.models import Classification, TinType

# The 50 states, DC, the territories, and the military "states" of APO/FPO/DPO addresses.
_STATE_LIST = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI UM AA AE AP"
)
STATES = frozenset(_STATE_LIST.split())
# Exempt payee codes 1-13 and FATCA exemption codes A-M, as the W-9 instructions list them.
EXEMPT_PAYEE_CODES = tuple(str(n) for n in range(1, 14))
FATCA_CODES = tuple("ABCDEFGHIJKLM")

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TaxFormIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    legal_name: Name
    business_name: Name | None = None
    federal_tax_classification: Annotated[Classification, Field(strict=False)]
    other_description: Line | None = Field(
        None, description="required when the classification is `other`"
    )
    exempt_payee_code: Literal[EXEMPT_PAYEE_CODES] | None = None  # type: ignore[valid-type]
    fatca_code: Literal[FATCA_CODES] | None = None  # type: ignore[valid-type]
    address_line1: Line
    address_line2: Line | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    postal_code: Annotated[str, StringConstraints(pattern=r"^\d{5}(-\d{4})?$")]
    tin_type: Annotated[TinType, Field(strict=False)]  # enums come from JSON as strings
    tin: Annotated[str, StringConstraints(max_length=20)]
    signature_name: Name
    certify: bool

    @model_validator(mode="after")
    def _consistent(self) -> TaxFormIn:
        if self.state not in STATES:
            raise ValueError("state must be a USPS state or territory code, e.g. NY, DC, PR")
        is_other = self.federal_tax_classification == Classification.OTHER
        if is_other and not self.other_description:
            raise ValueError("other_description is required when the classification is other")
        if not is_other and self.other_description is not None:
            raise ValueError("other_description is only for the classification other")
        return self


class TaxFormPublic(BaseModel):
    """A form as shown to its owner and to staff: the TIN masked."""

    id: uuid.UUID
    legal_name: str
    business_name: str | None
    federal_tax_classification: Annotated[Classification, Field(strict=False)]
    other_description: str | None
    exempt_payee_code: str | None
    fatca_code: str | None
    address_line1: str
    address_line2: str | None
    city: str
    state: str
    postal_code: str
    tin_type: TinType
    tin: str = Field(description="masked: ***-**-1234 (SSN) or **-***1234 (EIN)")
    signature_name: str
    signed_at: datetime
    certification_version: str


class TaxFormStaff(TaxFormPublic):
    user_id: uuid.UUID | None
    signed_ip: str | None
    signed_user_agent: str | None


class RevealedTin(BaseModel):
    form_id: uuid.UUID
    tin_type: TinType
    tin: str
