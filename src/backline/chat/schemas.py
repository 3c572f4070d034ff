"""Request bodies of the assistant's endpoints (strict: `stream` must be a JSON boolean)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field, StrictBool, StrictStr
from pydantic.config import JsonDict

# Blank text is refused (`message_empty`, `title_empty`): at least one character not a space.
NOT_BLANK: JsonDict = {"pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}


class ChatRequest(BaseModel):
    message: StrictStr = Field(
        json_schema_extra={**NOT_BLANK, "description": "at most BACKLINE_CHAT_MAX_MESSAGE_CHARS"}
    )
    conversation_id: uuid.UUID | None = None
    stream: StrictBool = True


class Rename(BaseModel):
    title: StrictStr = Field(min_length=1, max_length=200, json_schema_extra=NOT_BLANK)
