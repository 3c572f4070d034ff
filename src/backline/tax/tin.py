"""Checking and masking taxpayer identification numbers (SSN, EIN).

python-stdnum decides what is valid; when it refuses, `check` names the rule broken (length,
area, group, serial, EIN prefix) so the person can correct it. No message ever repeats the
number itself.
"""

from __future__ import annotations

import re

from stdnum.exceptions import ValidationError
from stdnum.us import ein, ssn

from backline.errors import Unprocessable

_SEPARATORS = re.compile(r"[\s-]")


class InvalidTin(Unprocessable):
    code = "invalid_tin"


def _ssn_rule(digits: str) -> str:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area == "000" or area == "666" or area[0] == "9":
        return "its area number (first three digits) is never issued: 000, 666 and 900-999"
    if group == "00":
        return "its group number (middle two digits) cannot be 00"
    if serial == "0000":
        return "its serial number (last four digits) cannot be 0000"
    return "it is a number known to be invalid (published in advertising)"


def check(tin_type: str, tin: str) -> str:
    """The TIN as nine digits, or `InvalidTin` naming the rule it breaks."""
    kind = tin_type.upper()
    digits = _SEPARATORS.sub("", tin)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidTin(f"An {kind} has digits only (hyphens and spaces are allowed).")
    if len(digits) != 9:
        raise InvalidTin(f"An {kind} has 9 digits; this has {len(digits)}.")
    try:
        if tin_type == "ssn":
            ssn.validate(digits)
        else:
            ein.validate(digits)
    except ValidationError:
        if tin_type == "ssn":
            raise InvalidTin(f"This SSN is not valid: {_ssn_rule(digits)}.") from None
        raise InvalidTin(
            "This EIN is not valid: its prefix (first two digits) is not one the IRS assigns."
        ) from None
    return digits


def masked(tin_type: str, last4: str) -> str:
    """`***-**-1234` for an SSN, `**-***1234` for an EIN."""
    return f"***-**-{last4}" if tin_type == "ssn" else f"**-***{last4}"


def formatted(tin_type: str, digits: str) -> str:
    return ssn.format(digits) if tin_type == "ssn" else ein.format(digits)
