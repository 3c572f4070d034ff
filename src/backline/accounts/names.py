"""Display names: what a person may call themselves, and which mail may carry it.

A name is the text left after stripping surrounding whitespace (Unicode's, so an ideographic
space counts as blank), 1 to 100 characters, made only of visible text and spaces: letters,
marks, numbers, punctuation, symbols and space separators. Refused, with 422
`invalid_display_name` at sign-up and on change alike, is any character of the Unicode
categories

* Cc, controls: line breaks, tabs, NUL, DEL and the C1 controls;
* Cf, format characters: the bidi embeddings, overrides and isolates (U+202A-202E,
  U+2066-2069), the direction marks, zero-width space, joiner and non-joiner, soft hyphen, BOM;
* Zl and Zp, the line and paragraph separators;
* Cs, Co and Cn: surrogates, private use and unassigned code points.

A name is shown to other people and written into emails and their To: header, so none may
break a line, reorder the text around it, or hold characters nobody sees. The zero-width
joiners go with the rest of Cf (emoji composed with them are refused): an invisible character
lets one name pass for another, and one plain rule is easier to keep than a list of exceptions.

A name is a claim by whoever typed it. Mail to an address nobody has confirmed yet (the
verification link at sign-up, the confirmation of a new address, anything to an unverified
account) neither greets by it nor puts it in the To: header: such mail may reach a stranger,
and must not carry a stranger's text to them.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from backline.errors import Unprocessable

MAX_LENGTH = 100
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


class Named(Protocol):
    """An account as mail sees it: a `User`, or sign-in's lighter `Account`."""

    @property
    def display_name(self) -> str: ...
    @property
    def is_verified(self) -> bool: ...


class InvalidDisplayName(Unprocessable):
    code = "invalid_display_name"


def check_display_name(raw: str) -> str:
    """The name as stored (surrounding whitespace stripped); `InvalidDisplayName` otherwise."""
    name = raw.strip()
    if not 1 <= len(name) <= MAX_LENGTH:
        raise InvalidDisplayName(f"A display name of 1 to {MAX_LENGTH} characters is required.")
    if any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in name):
        raise InvalidDisplayName(
            "A display name may hold only visible characters and spaces: no line breaks, "
            "control characters, direction overrides or zero-width characters."
        )
    return name


def addressee(user: Named) -> str | None:
    """The name to greet `user` by in mail to their address: None until it is verified."""
    return user.display_name if user.is_verified else None
