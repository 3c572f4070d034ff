"""Rendering portal pages: the Jinja2 environment, field errors, and the static files.

Static files are served under names carrying a hash of their content (`portal.3f9a1c2e.css`),
so they can be cached for a year: a changed file gets a new name, which the pages then use.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi.responses import HTMLResponse
from pydantic import ValidationError

if TYPE_CHECKING:
    from jinja2 import Environment

NO_STORE = {"Cache-Control": "no-store"}
TOKEN_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
STATIC_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    name: str
    media_type: str
    body: bytes


@cache
def assets() -> dict[str, Asset]:
    """Each static file under its hashed name, read once."""
    found: dict[str, Asset] = {}
    for entry in files("backline.web").joinpath("static").iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        stem, _, suffix = entry.name.rpartition(".")
        hashed = f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}.{suffix}"
        media_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        found[hashed] = Asset(entry.name, media_type, body)
    return found


@cache
def static_url(name: str) -> str:
    for hashed, asset in assets().items():
        if asset.name == name:
            return f"/static/{hashed}"
    raise LookupError(name)


@cache
def templates() -> Environment:
    # Jinja2 is imported at the first page rendered, not at start-up: an API-only process
    # never renders one.
    from jinja2 import Environment, PackageLoader

    env = Environment(
        loader=PackageLoader("backline.web", "templates"),
        autoescape=True,
    )
    env.globals["static_url"] = static_url
    return env


def page(
    name: str, status: int = 200, *, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """A page; signed-in pages and forms are never cached."""
    context.setdefault("viewer", None)
    context.setdefault("csrf", "")
    context.setdefault("errors", {})
    context.setdefault("values", {})
    context.setdefault("error", None)
    context.setdefault("notice", None)
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=headers or NO_STORE)


def field_errors(exc: ValidationError) -> dict[str, str]:
    """The first message for each top-level field, worded for a person."""
    found: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        location = error["loc"][0] if error["loc"] else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(str(location), message[:1].upper() + message[1:] + ".")
    return found
