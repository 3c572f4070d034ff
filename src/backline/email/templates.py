"""The email catalogue: each message's subject, its HTML and plain-text templates, a sample.

Templates are Jinja2 files beside this module (`NAME.html`, `NAME.txt`), the HTML ones
autoescaped, all with undefined variables refused rather than rendered blank. Links are built
only by the `url(path, **query)` function templates call, from BACKLINE_PUBLIC_URL and never
from a request's Host header. `backline email preview NAME` renders a message from its sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from backline.email.message import clean_header

if TYPE_CHECKING:
    from jinja2 import Environment


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    sample: dict[str, Any] = field(default_factory=dict)


CATALOGUE: dict[str, EmailTemplate] = {
    "verify_email": EmailTemplate(
        "Confirm your email address", {"token": "sample-token", "expires_hours": 24}
    ),
    "password_reset": EmailTemplate(
        "Reset your password", {"token": "sample-token", "expires_minutes": 60}
    ),
    "password_changed": EmailTemplate(
        "Your password was changed", {"changed_at": "2026-11-25 10:00 UTC"}
    ),
    "account_locked": EmailTemplate(
        "Sign-in to your account is paused",
        {"failures": 5, "locked_until": "2026-11-25 10:15 UTC"},
    ),
    "new_sign_in": EmailTemplate(
        "New sign-in to your account",
        {"signed_in_at": "2026-11-25 10:00 UTC", "ip": "203.0.113.7", "user_agent": "Firefox"},
    ),
    "recovery_code_used": EmailTemplate(
        "A recovery code was used to sign in", {"used_at": "2026-11-25 10:00 UTC", "remaining": 9}
    ),
    "signup_attempt": EmailTemplate("Someone tried to sign up with your email address"),
    "email_change_requested": EmailTemplate(
        "Your account's email address is changing", {"new_email": "new@example.com"}
    ),
    "application_received": EmailTemplate(
        "We received your artist application", {"artist_name": "The Sample Band"}
    ),
    "application_approved": EmailTemplate(
        "Your artist application was approved", {"artist_name": "The Sample Band"}
    ),
    "application_rejected": EmailTemplate(
        "About your artist application",
        {
            "artist_name": "The Sample Band",
            "reason": "We need a longer biography.",
            "reapply_after": "2027-01-02",
        },
    ),
    "track_approved": EmailTemplate(
        "Your track “{{ title }}” was approved", {"title": "Sample Song"}
    ),
    "track_rejected": EmailTemplate(
        "Your track “{{ title }}” needs changes",
        {"title": "Sample Song", "reason": "The artwork is not square."},
    ),
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class UnknownTemplate(KeyError):
    pass


@cache
def _environments() -> tuple[Environment, Environment]:
    # Imported at the first email rendered: the worker, which only delivers, never needs it.
    from jinja2 import Environment, PackageLoader, StrictUndefined

    loader = PackageLoader("backline.email", "templates")
    html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined)
    # The plain-text part is not HTML: escaping it would show "&amp;" to the reader.
    text = Environment(loader=loader, undefined=StrictUndefined, keep_trailing_newline=True)  # noqa: S701
    return html, text


def render(
    name: str, context: dict[str, Any], *, public_url: str, display_name: str | None = None
) -> Rendered:
    try:
        template = CATALOGUE[name]
    except KeyError:
        raise UnknownTemplate(name) from None
    base = public_url.rstrip("/")

    def url(path: str, **query: Any) -> str:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"links must be site paths, not {path!r}")
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{base}{path}{suffix}"

    values = {**context, "public_url": base, "url": url, "display_name": display_name}
    html_env, text_env = _environments()
    subject = clean_header(text_env.from_string(template.subject).render(values))
    values["subject"] = subject
    return Rendered(
        subject=subject,
        text=text_env.get_template(f"{name}.txt").render(values),
        html=html_env.get_template(f"{name}.html").render(values),
    )


def render_sample(name: str, *, public_url: str) -> Rendered:
    try:
        sample = CATALOGUE[name].sample
    except KeyError:
        raise UnknownTemplate(name) from None
    return render(name, sample, public_url=public_url, display_name="Sam Sample")
