"""The roles a user can hold: a module of its own, free of database imports, so that the command
line can offer them (`backline create-user --role`) without loading SQLAlchemy to show its help."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    USER = "user"
    ARTIST = "artist"
    STAFF = "staff"
    ADMIN = "admin"
