"""Email address validation and normalization (email-validator does the RFC work).

The stored form is email-validator's normalized address (Unicode NFC, IDNA domain) with the
whole address lowercased: mail providers treat local parts case-insensitively in practice, and
one person must not hold two accounts that differ only by case.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from backline.errors import Unprocessable

MAX_EMAIL_LENGTH = 254


class InvalidEmail(Unprocessable):
    code = "invalid_email"


def normalize_email(raw: str) -> str:
    candidate = raw.strip()
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmail("An email address of at most 254 characters is required.")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return result.normalized.lower()
