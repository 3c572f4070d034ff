"""A second step after the password, decided by a domain above `accounts`.

Second factors live in their own domain (`backline.factors`), which `accounts` must not import.
That domain registers one gate here when it is imported:

    second_step.register(gate)

After a right password for a verified address, sign-in (`login.log_in`) asks the gate (and so
does sign-in with an external provider, `backline.oidc`), on an
autocommit connection, whether the account must prove a second factor. The gate answers None
(sign-in carries on and opens the session) or a `Challenge`: the short-lived token the client
presents with its code, and the methods it may use. The session is then opened only by the
second step, through `login.open_after_second_step`, exactly as the password step would have.

With no gate registered (a build without second factors), sign-in is a single step.

The same domain may register a handler for tokens refused as access tokens
(`register_stray`): `deps.verify_session` tells it of each one, on the refusal's path only
(a valid token costs nothing more), so that a challenge token presented in place of an access
token is audited and counted. The handler may raise the problem to answer instead of the 401.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from backline.config import Settings
from backline.context import ClientInfo


@dataclass(frozen=True)
class Challenge:
    """What the password step answers instead of a session."""

    token: str
    methods: tuple[str, ...]
    expires_in: int  # seconds
    enrolment_required: bool  # the account must enrol a factor first (its role requires one)


Gate = Callable[..., Awaitable[Challenge | None]]
"""`gate(connection, *, settings, user_id, client, via) -> Challenge | None`."""

_gates: list[Gate] = []

Stray = Callable[[Request, str], Awaitable[None]]
"""`stray(request, token)`: told of a token just refused as an access token."""

_strays: list[Stray] = []


def register(gate: Gate) -> None:
    if gate not in _gates:
        _gates.append(gate)


def registered() -> bool:
    return bool(_gates)


def register_stray(handler: Stray) -> None:
    if handler not in _strays:
        _strays.append(handler)


async def stray(request: Request, token: str) -> None:
    """Tell the registered handlers of a token refused as an access token."""
    for handler in _strays:
        await handler(request, token)


async def ask(
    connection: AsyncConnection,
    *,
    settings: Settings,
    user_id: uuid.UUID,
    client: ClientInfo,
    via: str = "password",
) -> Challenge | None:
    """The first gate's challenge for this account, or None when none asks for one. `via` is
    how the first step was made: `password`, or `oidc` (see `backline.oidc`)."""
    for gate in _gates:
        challenge = await gate(
            connection, settings=settings, user_id=user_id, client=client, via=via
        )
        if challenge is not None:
            return challenge
    return None
