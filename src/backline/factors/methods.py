"""The methods that can complete a sign-in challenge, and which of them an account holds.

Each method is registered once with a name, whether it stands alone as a second factor (TOTP,
a passkey) or only backs one up (recovery codes: offered only beside a factor), and an SQL test
of whether an account holds it (an `EXISTS` over its own table, given the `users.id` column).
Which methods an account holds, and its role, are then read in one query, on sign-in's path:

    methods.register("passkey", standalone=True, held=lambda user_id: exists().where(...))
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backline.accounts.models import User
from backline.factors.models import RecoveryCode, TotpFactor

TOTP = "totp"
RECOVERY_CODE = "recovery_code"


@dataclass(frozen=True)
class Method:
    name: str
    standalone: bool
    held: Callable[[Any], ColumnElement[bool]]


_methods: dict[str, Method] = {}


def register(name: str, *, standalone: bool, held: Callable[[Any], ColumnElement[bool]]) -> None:
    method = Method(name, standalone, held)
    if _methods.setdefault(name, method) != method:
        raise ValueError(f"a method named {name!r} is registered already")


def names() -> list[str]:
    return list(_methods)


_users = cast(Table, User.__table__)


@dataclass(frozen=True)
class Holding:
    role: str
    methods: tuple[str, ...]  # held, usable: backups only beside a standalone factor
    factors: tuple[str, ...] = ()  # the standalone ones among them

    @property
    def has_factor(self) -> bool:
        return bool(self.methods)

    def has_factor_besides(self, name: str) -> bool:
        """Whether a standalone factor other than `name` is held (one may go, another stays)."""
        return any(held != name for held in self.factors)


async def holding(connection: AsyncConnection, *, user_id: uuid.UUID) -> Holding | None:
    """The account's role and the methods it holds, in one query; None if it is gone."""
    listed = list(_methods.values())
    query = select(
        _users.c.role, *(m.held(_users.c.id).label(f"m{i}") for i, m in enumerate(listed))
    ).where(_users.c.id == user_id)
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    held = [m for i, m in enumerate(listed) if row[i + 1]]
    factors = tuple(m.name for m in held if m.standalone)
    if not factors:
        return Holding(row[0], ())
    return Holding(row[0], tuple(m.name for m in held), factors)


register(
    TOTP,
    standalone=True,
    held=lambda user_id: exists().where(
        TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
    ),
)
register(
    RECOVERY_CODE,
    standalone=False,
    held=lambda user_id: exists().where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
    ),
)
