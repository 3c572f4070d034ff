"""Request and response bodies of the passkey endpoints.

A credential is the JSON a browser's `PublicKeyCredential.toJSON()` gives (base64url fields);
its shape is checked by the WebAuthn parser, so a malformed one is 400 `malformed_credential`
rather than a schema error.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasskeyCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    credential: dict[str, Any] = Field(
        description="the registration credential, as PublicKeyCredential.toJSON() gives it"
    )


class PasskeyRename(Strict):
    name: str = Field(min_length=1, max_length=200)


class PasskeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None


class PasskeyList(BaseModel):
    items: list[PasskeyPublic]


class SignInOptionsRequest(Strict):
    email: str | None = Field(
        None, max_length=320, description="optional: only this account's passkeys are accepted"
    )


class SignInRequest(Strict):
    credential: dict[str, Any] = Field(
        description="the assertion, as PublicKeyCredential.toJSON() gives it"
    )
    mode: Literal["token", "cookie"] = Field(
        "token", description="cookie: set HttpOnly cookies instead of returning tokens"
    )


class SecondStepOptionsRequest(Strict):
    challenge_token: str = Field(
        min_length=1, max_length=2048, description="from the password step (or the provider's)"
    )


class SecondStepRequest(Strict):
    """The second step of sign-in with a passkey: the challenge and an assertion made from the
    options `POST /api/auth/mfa/passkey/options` gave for it."""

    challenge_token: str = Field(min_length=1, max_length=2048)
    credential: dict[str, Any] = Field(
        description="the assertion, as PublicKeyCredential.toJSON() gives it"
    )
    mode: Literal["token", "cookie"] = Field(
        "token", description="cookie: set HttpOnly cookies instead of returning tokens"
    )
