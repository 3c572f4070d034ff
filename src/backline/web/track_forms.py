"""The track form's fields: a track shown as form values, and a posted form read back into
the API's `TrackUpdate`, with each validation error placed beside the field it concerns.

Credits are rows of three fields (`credit_name_0`, `credit_role_0`, `credit_split_0`, ...): a
page without JavaScript offers the rows it has plus an empty one, up to the API's 50. A row
left blank is no credit; a cleared field clears the value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from backline.tracks.schemas import split_number

TEXT_FIELDS = ("title", "primary_artist", "genre", "language", "release_date", "isrc")
CREDIT_PARTS = ("name", "role", "split")
MAX_CREDITS = 50
FIELD_LIMIT = 4000


def credit_rows(values: dict[str, str]) -> int:
    """How many credit rows to show: those with anything in them, and a blank one or two."""
    filled = [
        i
        for i in range(MAX_CREDITS)
        if any(values.get(f"credit_{part}_{i}") for part in CREDIT_PARTS)
    ]
    return min(MAX_CREDITS, max(3, (filled[-1] + 2) if filled else 0))


def track_values(track: dict[str, Any]) -> dict[str, str]:
    """A track (`tracks.public_dict`) as the form's field values."""
    values = {name: str(track[name]) if track[name] is not None else "" for name in TEXT_FIELDS}
    values["featured_artists"] = "\n".join(track["featured_artists"])
    explicit = track["explicit"]
    values["explicit"] = "" if explicit is None else ("yes" if explicit else "no")
    for i, credit in enumerate(track["credits"]):
        values[f"credit_name_{i}"] = credit["name"]
        values[f"credit_role_{i}"] = credit["role"]
        values[f"credit_split_{i}"] = str(split_number(credit["split"]))
    return values


def posted_values(form: FormData) -> dict[str, str]:
    """The form's fields as typed (bounded), to check and to show again."""
    names = [*TEXT_FIELDS, "featured_artists", "explicit"]
    names += [f"credit_{part}_{i}" for i in range(MAX_CREDITS) for part in CREDIT_PARTS]
    values = {}
    for name in names:
        value = form.get(name)
        if isinstance(value, str) and value:
            values[name] = value[:FIELD_LIMIT]
    return values


def update_data(values: dict[str, str]) -> dict[str, Any]:
    """The form's values as a `TrackUpdate` body: blank is None (a cleared value)."""
    data: dict[str, Any] = {"title": values.get("title", "").strip()}
    for name in TEXT_FIELDS[1:]:
        data[name] = values.get(name, "").strip() or None
    featured = [line.strip() for line in values.get("featured_artists", "").splitlines()]
    data["featured_artists"] = [name for name in featured if name] or None
    data["explicit"] = {"yes": True, "no": False}.get(values.get("explicit", ""))
    credits = []
    for i in range(MAX_CREDITS):
        row = {part: values.get(f"credit_{part}_{i}", "").strip() for part in CREDIT_PARTS}
        if any(row.values()):
            credits.append({**row, "split": row["split"] or None, "row": i})
    data["credits"] = credits or None
    return data


def without_rows(data: dict[str, Any]) -> dict[str, Any]:
    """The body the API takes: the credits without the row each came from."""
    credits = data.get("credits")
    if not credits:
        return data
    return {**data, "credits": [{k: v for k, v in c.items() if k != "row"} for c in credits]}


def track_errors(exc: ValidationError, data: dict[str, Any]) -> dict[str, str]:
    """The first message for each field; a credit's error goes beside its own input."""
    found: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        location = error["loc"]
        name = str(location[0]) if location else "form"
        if name == "credits" and len(location) >= 3 and isinstance(location[1], int):
            row = data["credits"][location[1]]["row"]
            name = f"credit_{location[2]}_{row}"
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(name, message[:1].upper() + message[1:] + ".")
    return found
