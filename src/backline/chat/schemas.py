"""Request bodies of the assistant's endpoints (strict: `stream` must be a JSON boolean)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field, StrictBool, StrictStr


class ChatRequest(BaseModel):
    message: StrictStr
    conversation_id: uuid.UUID | None = None
    stream: StrictBool = True


class Rename(BaseModel):
    title: StrictStr = Field(min_length=1, max_length=200)
