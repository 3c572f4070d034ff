"""Request and response bodies of the second-factor endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backline.accounts.schemas import Strict, TokenResponse

CHALLENGE = Field(min_length=1, max_length=2048, description="from the password step")
CODE = Field(min_length=1, max_length=64)
Mode = Literal["token", "cookie"]


class VerifyWithCode(Strict):
    """The second step with a code from the authenticator app."""

    challenge_token: str = CHALLENGE
    code: str = Field(min_length=1, max_length=64, description="6 digits")
    mode: Mode = Field("token", description="cookie: set HttpOnly cookies instead")


class VerifyWithRecoveryCode(Strict):
    """The second step with one of the recovery codes."""

    challenge_token: str = CHALLENGE
    recovery_code: str = Field(min_length=1, max_length=64)
    mode: Mode = Field("token", description="cookie: set HttpOnly cookies instead")


VerifyRequest = VerifyWithCode | VerifyWithRecoveryCode


class ChallengeRequest(Strict):
    challenge_token: str = CHALLENGE


class EnrolConfirmRequest(Strict):
    challenge_token: str = CHALLENGE
    code: str = CODE
    mode: Mode = "token"


class PasswordRequest(Strict):
    password: str = Field(min_length=1, max_length=1024)


class CodeRequest(Strict):
    code: str = CODE


class DisableRequest(Strict):
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=1, max_length=64, description="authenticator or recovery code")


class PasswordReauth(Strict):
    """The password (and, optionally, a code as well)."""

    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(None, min_length=1, max_length=64)


class CodeReauth(Strict):
    """A code from the authenticator app, or a recovery code."""

    code: str = Field(min_length=1, max_length=64)


ReauthRequest = PasswordReauth | CodeReauth


class TotpEnrolment(BaseModel):
    """A secret for the authenticator app, pending until a code from it confirms it."""

    secret: str = Field(description="base32, for typing into the app by hand")
    otpauth_uri: str
    qr_svg: str = Field(description="the URI as a QR code, an SVG document")


class RecoveryCodes(BaseModel):
    """Shown this once: only their hashes are kept."""

    recovery_codes: list[str]


class EnrolledSession(TokenResponse):
    recovery_codes: list[str] = Field(description="shown this once")


class TotpState(BaseModel):
    enabled: bool
    pending: bool = Field(description="an enrolment is under way, not yet confirmed")
    created_at: datetime | None
    last_used_at: datetime | None


class RecoveryCodesState(BaseModel):
    remaining: int
    created_at: datetime | None
    last_used_at: datetime | None


class FactorsState(BaseModel):
    totp: TotpState
    recovery_codes: RecoveryCodesState
    required: bool = Field(description="the account's role must sign in with a second factor")
    required_met: bool = Field(
        description="the role needs no second factor, or the account holds one (TOTP or a passkey)"
    )
    methods: list[str] = Field(
        description="what the second step of sign-in offers: totp, recovery_code, passkey"
    )
