"""Track bodies, named by direction. Rules of shape live here (ISRC, splits, language)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from stdnum import isrc as stdnum_isrc
from stdnum.exceptions import ValidationError as StdnumError

Name = Annotated[str, Field(min_length=1, max_length=200)]


class Credit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Annotated[str, Field(min_length=1, max_length=50)]
    split: Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]


def split_number(value: str | Decimal | float) -> int | float:
    """A split as a JSON number, however it is kept: 100 reads back as 100, 33.33 as 33.33.

    Splits are stored as exact decimal strings; at two decimal places up to 100, a float's
    shortest form is that same decimal, so the number sent is the number received.
    """
    exact = Decimal(str(value))
    return int(exact) if exact == exact.to_integral_value() else float(exact)


class CreditPublic(BaseModel):
    name: str
    role: str
    split: int | float


def _date_text(value: object) -> object:
    """A date is text (YYYY-MM-DD), as the document says: not a number of seconds."""
    if isinstance(value, int | float):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


# The compact form python-stdnum checks: country (its list), registrant, year, record.
ISRC_SCHEMA = {
    "pattern": f"^(?:{'|'.join(sorted(stdnum_isrc._country_codes))})[A-Z0-9]{{3}}[0-9]{{7}}$",
    "description": "e.g. USRC17607839 (hyphens and spaces are ignored)",
}


class TrackFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_artist: Name | None = None
    featured_artists: Annotated[list[Name], Field(max_length=20)] | None = None
    genre: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    explicit: StrictBool | None = None  # true or false, not 0 or "yes"
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")] | None = None
    release_date: Annotated[date, BeforeValidator(_date_text)] | None = None
    isrc: Annotated[str, Field(max_length=20, json_schema_extra=ISRC_SCHEMA)] | None = None
    credits: Annotated[list[Credit], Field(max_length=50)] | None = None

    @field_validator("isrc")
    @classmethod
    def _isrc(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(stdnum_isrc.validate(value))  # python-stdnum: compact, checked
        except StdnumError:
            raise ValueError("not a valid ISRC (e.g. USRC17607839)") from None

    @field_validator("credits")
    @classmethod
    def _splits(cls, value: list[Credit] | None) -> list[Credit] | None:
        if value and sum(c.split for c in value) != Decimal(100):
            raise ValueError("the credits' splits must add up to 100")
        return value


class TrackCreate(TrackFields):
    title: Name


class TrackUpdate(TrackFields):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})  # {} is nothing to change

    title: Name | SkipJsonSchema[None] = None  # optional, but never null

    @model_validator(mode="after")
    def _something(self) -> TrackUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        return self


class AudioPublic(BaseModel):
    size: int
    sha256: str
    format: str
    duration_seconds: float
    sample_rate: int | None
    channels: int | None
    bitrate: int | None


class ArtworkPublic(BaseModel):
    size: int
    sha256: str
    format: str
    width: int
    height: int


class UploadPublic(BaseModel):
    """The last audio upload: receiving, awaiting_upload, verifying, ready or failed."""

    state: str
    error: str | None


class TrackPublic(BaseModel):
    id: uuid.UUID
    title: str
    primary_artist: str | None
    featured_artists: list[str]
    genre: str | None
    explicit: bool | None
    language: str | None
    release_date: date | None
    isrc: str | None
    credits: list[CreditPublic]
    status: str
    rejection_reason: str | None
    audio: AudioPublic | None
    artwork: ArtworkPublic | None
    upload: UploadPublic | None
    created_at: datetime
    updated_at: datetime


class TrackPage(BaseModel):
    items: list[TrackPublic]
    next_cursor: str | None


class SignedURL(BaseModel):
    url: str
    expires_in: int


AUDIO_CONTENT_TYPES = (
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/flac",
    "audio/x-flac",
    "audio/aiff",
    "audio/x-aiff",
    "audio/mpeg",
    "audio/mp4",
    "audio/x-m4a",
    "audio/aac",
    "audio/ogg",
    "audio/opus",
    "application/octet-stream",
)


PRESIGNED_PUT_LIMIT = 5 * 1024**3  # the most one S3 PUT may carry; the setting may be lower


class UploadURLCreate(BaseModel):
    """A direct upload: what the client will send, signed into the URL it gets back."""

    model_config = ConfigDict(extra="forbid")

    size: Annotated[
        int,
        Field(
            ge=1,
            description="bytes; over BACKLINE_MAX_AUDIO_BYTES (at most 5 GiB) is 413",
        ),
    ]
    sha256: Annotated[
        str,
        Field(
            description="the file's SHA-256: 64 hex digits, or 44 characters of base64",
            json_schema_extra={"pattern": "^([0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$"},
        ),
    ]
    content_type: Annotated[
        str, Field(max_length=40, json_schema_extra={"enum": list(AUDIO_CONTENT_TYPES)})
    ] = "application/octet-stream"

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        value = value.strip()
        if len(value) == 64:
            try:
                return bytes.fromhex(value).hex()
            except ValueError:
                pass
        elif len(value) == 44:
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == 32:
                return raw.hex()
        raise ValueError("not a SHA-256 digest (64 hex digits, or 44 characters of base64)")

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in AUDIO_CONTENT_TYPES:
            raise ValueError(f"must be one of {', '.join(AUDIO_CONTENT_TYPES)}")
        return value


class UploadURLPublic(BaseModel):
    url: str
    method: str = "PUT"
    headers: Annotated[dict[str, str], Field(description="send exactly these with the body")]
    expires_in: int
