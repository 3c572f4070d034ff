"""RFC 6238 time-based one-time passwords: secrets, the otpauth URI and its QR code, checking.

pyotp computes the codes (HMAC-SHA1, 6 digits, 30-second steps: what every authenticator app
expects); this module decides which codes count. A code is accepted for the current step or
one step either side (a phone's clock a little off, a code typed as it rolled over), and only
for a step after the last one accepted (`after`): a code seen once, by anyone, is no good again.

No function here reads a clock: the moment is passed in (`at`), so tests check any moment they
like; the service passes `tokens.now()`, the clock seam the rest of Backline uses.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

ISSUER = "Backline"
DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1  # steps accepted either side of the current one


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def step_at(at: datetime) -> int:
    return step_at_epoch(at.timestamp())


def step_at_epoch(seconds: float) -> int:
    """The step of a moment given as seconds since the epoch."""
    return int(seconds) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def normalize(code: str) -> str | None:
    """The digits of a typed code (spaces and dashes dropped), or None if it cannot be one."""
    digits = "".join(ch for ch in code if ch not in " -")
    if len(digits) != DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def matching_step(secret: str, code: str, *, at: datetime, after: int | None) -> int | None:
    """The step `code` is the code of, within the drift around `at` and later than `after`;
    None when there is none (wrong, expired, or already used)."""
    typed = normalize(code)
    if typed is None:
        return None
    now = step_at(at)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Every candidate is compared, in constant time, whatever matched before it.
        if hmac.compare_digest(code_at(secret, step), typed) and (after is None or step > after):
            found = step
    return found


def uri(secret: str, *, account: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def qr_svg(otpauth_uri: str) -> str:
    """The URI as a QR code: an SVG document, with a title for screen readers."""
    import segno  # imported at the first enrolment, not at start-up (some 0.8 MiB)

    code = segno.make(otpauth_uri, error="m", micro=False)
    svg: str = code.svg_inline(
        scale=4, border=4, title="QR code for your authenticator app", omitsize=False
    )
    return svg
