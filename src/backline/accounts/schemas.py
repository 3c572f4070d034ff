"""Request and response bodies of the account endpoints, named by direction.

Lengths are capped generously here (a 10 KB "email" is refused before any work); the rules
themselves (address syntax, password policy) live in the services.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

# What the services require, told in the document; the fields stay loose so that the services'
# own codes (`invalid_email`, `weak_password`) are what a client gets.
EMAIL: JsonDict = {"format": "email"}
NEW_PASSWORD: JsonDict = {"minLength": 8, "maxLength": 128}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterRequest(Strict):
    email: str = Field(min_length=3, max_length=320, json_schema_extra=EMAIL)
    password: str = Field(min_length=1, max_length=1024, json_schema_extra=NEW_PASSWORD)
    display_name: str = Field(min_length=1, max_length=100)


class LoginRequest(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    mode: Literal["token", "cookie"] = Field(
        "token", description="cookie: set HttpOnly cookies instead of returning tokens"
    )


class RefreshRequest(Strict):
    refresh_token: str | None = Field(None, max_length=128)
    mode: Literal["token", "cookie"] = "token"


class TokenResponse(BaseModel):
    access_token: str | None
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type
    expires_in: int
    refresh_token: str | None
    csrf_token: str | None = Field(None, description="cookie mode: send as X-CSRF-Token")


class MfaChallengeResponse(BaseModel):
    """The password was right, and the account must prove a second factor: no session yet.

    Send `challenge_token` with a code to `POST /api/auth/mfa/verify` within `expires_in`
    seconds (or, when `enrolment_required`, enrol one first: `POST /api/auth/mfa/enrol/totp`).
    The token is good for that alone, once, and for at most 5 wrong codes.
    """

    mfa_required: Literal[True] = True
    challenge_token: str
    methods: list[str] = Field(description="what may complete it, e.g. totp, recovery_code")
    expires_in: int
    enrolment_required: bool = Field(
        False, description="the account's role needs a second factor and it has none yet"
    )


class EmailRequest(Strict):
    # Any text: the answer is the same whether or not it is an address with an account.
    email: str = Field(min_length=1, max_length=320)


class TokenRequest(Strict):
    token: str = Field(min_length=1, max_length=128)


class ResetPasswordRequest(Strict):
    token: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=1024, json_schema_extra=NEW_PASSWORD)


class ChangePasswordRequest(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024, json_schema_extra=NEW_PASSWORD)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    role: str
    email_verified: bool
    created_at: datetime


class UserUpdate(Strict):
    display_name: str | None = Field(None, min_length=1, max_length=100)
    email: str | None = Field(None, min_length=3, max_length=320)
    current_password: str | None = Field(None, max_length=1024)


class DeleteAccountRequest(Strict):
    password: str = Field(min_length=1, max_length=1024)


class SessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool = False


class SessionPage(BaseModel):
    items: list[SessionPublic]
    next_cursor: str | None
