"""Artist application bodies, named by direction. Rules of shape live here.

An application names the act (`artist_name`), tells about it (`bio`, at most 2,000
characters); optionally it picks up to five genres from `Genre`, gives the country it is based
in (ISO 3166-1 alpha-2) and up to ten web links (http or https only), of which up to three may be
marked `sample`: an applicant cannot upload tracks yet, so samples are how staff hear them.
Rule breaches are 422 `validation_failed`, each error's `type` naming the rule.
"""

from __future__ import annotations

import enum
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from backline.artists.countries import COUNTRY_CODES

MAX_BIO = 2000
MAX_LINKS = 10
MAX_SAMPLES = 3
MAX_GENRES = 5


class Genre(enum.StrEnum):
    ALTERNATIVE = "alternative"
    AMBIENT = "ambient"
    BLUES = "blues"
    CLASSICAL = "classical"
    COUNTRY = "country"
    ELECTRONIC = "electronic"
    EXPERIMENTAL = "experimental"
    FOLK = "folk"
    FUNK = "funk"
    GOSPEL = "gospel"
    HIP_HOP = "hip_hop"
    HOUSE = "house"
    INDIE = "indie"
    JAZZ = "jazz"
    LATIN = "latin"
    METAL = "metal"
    POP = "pop"
    PUNK = "punk"
    R_AND_B = "r_and_b"
    REGGAE = "reggae"
    ROCK = "rock"
    SOUL = "soul"
    SOUNDTRACK = "soundtrack"
    TECHNO = "techno"
    WORLD = "world"
    OTHER = "other"


def _no_control(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" and char not in "\n\r\t" for char in value):
        raise PydanticCustomError("control_character", "control characters are not allowed")
    return value


# What the validators refuse, told in the document: control characters (Cc; tabs and line
# breaks allowed in free text) and, once stripped, text too short.
_CC = "\\u0000-\\u001f\\u007f-\\u009f"
_CC_TEXT = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f"
ONE_LINE: JsonDict = {"pattern": f"^[^{_CC}]*[^\\s{_CC}][^{_CC}]*$"}
FREE_TEXT: JsonDict = {"pattern": f"^[^{_CC_TEXT}]*[^\\s{_CC_TEXT}][^{_CC_TEXT}]*$"}
THREE_OR_MORE: JsonDict = {"pattern": "^\\s*[^\\s\\u0000][^\\u0000]+[^\\s\\u0000]\\s*$"}


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[HttpUrl, Field(description="http or https; no user name or password")]
    sample: StrictBool = Field(False, description="a recording of the applicant's music")

    @field_validator("url", mode="before")
    @classmethod
    def _scheme(cls, value: object) -> object:
        # Said plainly rather than as pydantic's generic URL error: `javascript:` and other
        # schemes would run or open something in a reviewer's browser.
        if isinstance(value, str) and value.strip().split(":", 1)[0].lower() not in (
            "http",
            "https",
        ):
            raise PydanticCustomError("url_scheme", "links must start with http:// or https://")
        return value

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: HttpUrl) -> HttpUrl:
        if value.username or value.password:
            raise PydanticCustomError("url_credentials", "links may not carry a user or password")
        return value


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    artist_name: Annotated[str, Field(min_length=1, max_length=100, json_schema_extra=ONE_LINE)]
    bio: Annotated[str, Field(min_length=1, max_length=MAX_BIO, json_schema_extra=FREE_TEXT)]
    genres: Annotated[list[Genre], Field(max_length=MAX_GENRES)] = []
    country: Annotated[
        str | None,
        Field(
            min_length=2,
            max_length=2,
            description="ISO 3166-1 alpha-2",
            json_schema_extra={"enum": [*sorted(COUNTRY_CODES), None]},
        ),
    ] = None
    links: Annotated[
        list[Link], Field(max_length=MAX_LINKS, json_schema_extra={"uniqueItems": True})
    ] = []

    @field_validator("artist_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if "\n" in value or "\r" in value or "\t" in value:
            raise PydanticCustomError("control_character", "the name is one line")
        return _no_control(value)

    @field_validator("bio")
    @classmethod
    def _bio(cls, value: str) -> str:
        return _no_control(value)

    @field_validator("genres")
    @classmethod
    def _genres(cls, value: list[Genre]) -> list[Genre]:
        return list(dict.fromkeys(value))  # a genre named twice counts once

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.upper()
        if code not in COUNTRY_CODES:
            raise PydanticCustomError("unknown_country", "not an ISO 3166-1 alpha-2 country code")
        return code

    @model_validator(mode="after")
    def _links(self) -> ApplicationCreate:
        urls = [str(link.url) for link in self.links]
        if len(set(urls)) != len(urls):
            raise PydanticCustomError("duplicate_link", "each link may be given once")
        if sum(link.sample for link in self.links) > MAX_SAMPLES:
            raise PydanticCustomError(
                "too_many_samples", "at most {limit} links may be samples", {"limit": MAX_SAMPLES}
            )
        return self


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[
        str,
        Field(
            min_length=3,
            max_length=1000,
            description="shown and mailed to the applicant",
            json_schema_extra=THREE_OR_MORE,
        ),
    ]


class LinkPublic(BaseModel):
    url: str
    sample: bool


class ApplicationPublic(BaseModel):
    """An application as its applicant sees it."""

    id: uuid.UUID
    artist_name: str
    bio: str
    genres: list[str]
    country: str | None
    links: list[LinkPublic]
    status: str
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    withdrawn_at: datetime | None
    reapply_after: Annotated[
        datetime | None, Field(description="after a rejection: when a new application is taken")
    ]


class Applicant(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    role: str


class ApplicationReview(ApplicationPublic):
    """An application as staff see it: who sent it and who holds it."""

    applicant: Applicant
    reviewer_id: uuid.UUID | None
    claimed_at: datetime | None


class ApplicationPage(BaseModel):
    items: list[ApplicationReview]
    next_cursor: str | None
