"""Request and response bodies of the second-factor endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from backline.accounts.schemas import Strict, TokenResponse

CHALLENGE = Field(min_length=1, max_length=2048, description="from the password step")
CODE = Field(min_length=1, max_length=64)
Mode = Literal["token", "cookie"]


class VerifyRequest(Strict):
    """The second step: the challenge and exactly one of `code` (from the authenticator app)
    and `recovery_code`."""

    challenge_token: str = CHALLENGE
    code: str | None = Field(None, min_length=1, max_length=64, description="6 digits")
    recovery_code: str | None = Field(None, min_length=1, max_length=64)
    mode: Mode = Field("token", description="cookie: set HttpOnly cookies instead")

    @model_validator(mode="after")
    def _one_code(self) -> Self:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("send either code or recovery_code")
        return self


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


class ReauthRequest(Strict):
    """The password, or a code (authenticator or recovery), or both."""

    password: str | None = Field(None, min_length=1, max_length=1024)
    code: str | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.password is None and self.code is None:
            raise ValueError("send the password or a code")
        return self


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
