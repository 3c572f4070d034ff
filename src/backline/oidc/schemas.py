"""Request and response shapes of OpenID Connect sign-in."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class ProviderOut(BaseModel):
    name: str
    display_name: str
    start_url: str


class IdentityOut(BaseModel):
    id: uuid.UUID
    provider: str
    subject: str
    email: str
    linked_at: datetime
    last_used_at: datetime | None


class IdentityList(BaseModel):
    items: list[IdentityOut]
    has_password: bool


class LinkStarted(BaseModel):
    authorization_url: str
