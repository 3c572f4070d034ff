"""Why a passkey ceremony was refused: one problem type, each case with its status and code.

400 malformed_credential   the credential is not a WebAuthn credential's JSON
400 challenge_unknown      the challenge was never issued here (or for another purpose or
                           another account)
400 challenge_used         the challenge was answered before: each is good once
400 challenge_expired      the challenge is older than five minutes
400 wrong_origin           the browser reported another origin than BACKLINE_WEBAUTHN_ORIGIN
400 wrong_rp_id            the authenticator signed for another relying party ID
400 invalid_attestation    a registration that does not verify
401 unknown_credential     no account has this passkey
401 credential_mismatch    the passkey belongs to another account than the one named
401 sign_count_replayed    the signature counter did not increase: a replay or a clone
401 invalid_assertion      the signature (or user presence / verification) does not verify

In the second step of sign-in (`POST /api/auth/mfa/passkey/verify`) the same refusals answer,
the three about the passkey challenge prefixed `passkey_` (`passkey_challenge_unknown`, ...):
there `challenge_*` name the sign-in's own challenge token.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from backline.errors import ProblemError


class Refused(ProblemError):
    """A refused ceremony; `user_id` names the account concerned, when one is known."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        user_id: uuid.UUID | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, code=code, headers=headers)
        self.status = status
        self.user_id = user_id


def in_second_step(code: str) -> str:
    """A refusal's code as the second step of sign-in answers it (see above)."""
    return f"passkey_{code}" if code in CHALLENGE_CODES else code


def malformed() -> Refused:
    return Refused(400, "malformed_credential", "The credential is not a WebAuthn credential.")


CHALLENGE_CODES = ("challenge_unknown", "challenge_used", "challenge_expired")
CEREMONY = (
    (400, "malformed_credential"),
    (400, "challenge_unknown"),
    (400, "challenge_used"),
    (400, "challenge_expired"),
    (400, "wrong_origin"),
    (400, "wrong_rp_id"),
)
REGISTRATION = (*CEREMONY, (400, "invalid_attestation"), (409, "passkey_exists"))
SECOND_STEP = (
    (400, "malformed_credential"),
    *((400, f"passkey_{code}") for code in CHALLENGE_CODES),
    (400, "wrong_origin"),
    (400, "wrong_rp_id"),
    (401, "unknown_credential"),
    (401, "credential_mismatch"),
    (401, "sign_count_replayed"),
    (401, "invalid_assertion"),
)
ASSERTION = (
    *CEREMONY,
    (401, "unknown_credential"),
    (401, "credential_mismatch"),
    (401, "sign_count_replayed"),
    (401, "invalid_assertion"),
    (403, "email_not_verified"),
    (429, "account_locked"),
)
