"""Email address validation and normalization (email-validator does the RFC work).

The stored form is the address in ASCII, lowercased:

* the local part must be ASCII (no SMTPUTF8): most mail systems cannot deliver anything else,
  and it shuts out look-alike letters from other scripts (a Cyrillic "a" passing for a
  Latin one);
* an internationalized domain is kept in its IDNA form (`xn--...`), so a look-alike domain
  cannot pass for another in any list a person reads;
* the whole address is lowercased: providers treat local parts case-insensitively in practice,
  and one person must not hold two accounts that differ only by case.
"""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from backline.errors import Unprocessable

MAX_EMAIL_LENGTH = 254


class InvalidEmail(Unprocessable):
    code = "invalid_email"


# Validation is a pure function of the text, and one request asks it of the same address several
# times (the rate-limit key, the failed-sign-in key, the lookup): at about 0.2 ms a call, that
# was a tenth of a sign-in's own work. Refused addresses raise, and are not remembered.
@lru_cache(maxsize=4096)
def normalize_email(raw: str) -> str:
    candidate = raw.strip()
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmail("An email address of at most 254 characters is required.")
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return (result.ascii_email or result.normalized).lower()
