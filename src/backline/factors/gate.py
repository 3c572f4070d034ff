"""The second step of sign-in: which accounts get a challenge instead of a session.

Registered with `accounts.second_step` on import. After a right password (or an external
provider's sign-in), an account holding a second factor gets a `sign_in` challenge listing the
methods it holds (any registered with `factors.methods`: a passkey too). An account whose role is
in BACKLINE_MFA_REQUIRED_ROLES and holds none gets an `enrol` challenge instead: it opens no
session and reaches nothing but the enrolment of an authenticator app, whose confirming code
completes it (`POST /api/auth/mfa/enrol/totp`, then `.../confirm`). Every other account signs
in at once, as before.

It also registers `challenge.presented_as_access`, told of every token refused as an access
token: a challenge token used so is audited and counted against `mfa_verify`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from backline.accounts import second_step
from backline.config import Settings
from backline.context import ClientInfo
from backline.factors import challenge, methods
from backline.factors.challenge import Purpose


async def gate(
    connection: AsyncConnection,
    *,
    settings: Settings,
    user_id: uuid.UUID,
    client: ClientInfo,
    via: str = "password",
) -> second_step.Challenge | None:
    held = await methods.holding(connection, user_id=user_id)
    if held is None:
        return None
    must = held.role in settings.mfa_required_roles
    if not held.has_factor and not must:
        return None
    purpose = Purpose.SIGN_IN if held.has_factor else Purpose.ENROL
    token, seconds = await challenge.issue(
        connection, settings=settings, user_id=user_id, purpose=purpose, client=client, via=via
    )
    offered = held.methods if held.has_factor else (methods.TOTP,)
    return second_step.Challenge(
        token=token, methods=offered, expires_in=seconds, enrolment_required=not held.has_factor
    )


second_step.register(gate)
second_step.register_stray(challenge.presented_as_access)
