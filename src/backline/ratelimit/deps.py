"""Declaring a limit on a route, and telling the client about it.

    @router.post("/login", dependencies=[RateLimit("login")])

The dependency counts the request against the named policy and refuses it with 429
`rate_limited` and `Retry-After` once a limit is reached. The route's decisions are reported
in the IETF structured headers, one list member per policy (the global limit only when it
refuses, to keep its check to one round trip):

    RateLimit-Policy: "login";q=10;w=60
    RateLimit: "login";r=0;t=42
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope

from backline.accounts.emails import InvalidEmail, normalize_email
from backline.apidoc.declare import raises
from backline.errors import TooManyRequests
from backline.ratelimit.clientip import client_ip, rate_key
from backline.ratelimit.limiter import Decision, RateLimiter
from backline.ratelimit.policies import Key

_STATE_KEY = "ratelimit"
MAX_EMAIL_KEY = 320


def record(scope: Scope, decision: Decision) -> None:
    scope.setdefault("state", {}).setdefault(_STATE_KEY, []).append(decision)


def add_headers(scope: Scope, message: Message) -> None:
    """Write the request's decisions into a response start message."""
    decisions = [d for d in scope.get("state", {}).get(_STATE_KEY, []) if d.reportable]
    if not decisions:
        return
    headers = MutableHeaders(scope=message)
    headers["RateLimit-Policy"] = ", ".join(
        f'"{d.policy}";q={d.limit};w={d.window}' for d in decisions
    )
    headers["RateLimit"] = ", ".join(f'"{d.policy}";r={d.remaining};t={d.reset}' for d in decisions)


def refusal(decision: Decision) -> TooManyRequests:
    return TooManyRequests(
        f"Too many requests; try again in {decision.reset} seconds.",
        headers={"Retry-After": str(decision.reset)},
        policy=decision.policy,
    )


async def identities(request: Request, keys: tuple[Key, ...]) -> dict[Key, str]:
    settings = request.app.state.settings
    ip = rate_key(
        client_ip(request.scope, settings.trusted_proxies), settings.rate_limit_ipv6_prefix
    )
    found: dict[Key, str] = {}
    for key in keys:
        if key == "ip":
            found["ip"] = ip
        elif key == "user":
            user_id = getattr(request.state, "user_id", None)
            found["user"] = str(user_id) if user_id is not None else f"ip:{ip}"
        elif key == "email" and (email := await _body_email(request)) is not None:
            found["email"] = email_key(settings.signing_key, email)
    return found


@lru_cache(maxsize=8)
def _email_key_secret(signing_key: bytes) -> bytes:
    """A key of its own for counting addresses, derived from the secret key."""
    return hmac.new(signing_key, b"backline rate-limit email keys", hashlib.sha256).digest()


def email_key(signing_key: bytes, email: str) -> str:
    """What Redis holds for an address: a keyed hash, never the address itself.

    Keyed, so that nobody who reads the keys can test a list of addresses against them; 128
    bits of it keep two addresses from sharing a budget by chance.
    """
    secret = _email_key_secret(signing_key)
    return hmac.new(secret, email.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


async def _body_email(request: Request) -> str | None:
    """The body's `email` field (JSON, or a portal form), normalized for counting; None when
    there is none."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        email: object = (await request.form()).get("email")  # cached for the route too
    else:
        try:
            body = await request.json()  # Starlette caches it: the route reads the same
        except ValueError:
            return None
        email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return None
    try:  # the same address, however it is spelled, counts as one
        return normalize_email(email[:MAX_EMAIL_KEY])
    except InvalidEmail:
        # JSON may carry lone surrogates, which no key can hold: they count as "?".
        text = email.strip().lower()[:MAX_EMAIL_KEY]
        return text.encode("utf-8", "replace").decode("utf-8")


async def charge(request: Request, name: str, *, cost: int = 1) -> Decision:
    """Count `cost` units (such as chat tokens) against a policy; refuse when it is spent."""
    limiter: RateLimiter = request.app.state.ratelimiter
    decision = await limiter.check(
        name, await identities(request, limiter.policies[name].keys), cost=cost
    )
    record(request.scope, decision)
    if not decision.allowed:
        raise refusal(decision)
    return decision


def RateLimit(name: str) -> Any:  # noqa: N802 - reads as a declaration on the route
    @raises(TooManyRequests, (503, "rate_limit_unavailable"))
    async def limit(request: Request) -> None:
        await charge(request, name)

    limit.__name__ = f"rate_limit_{name}"
    return Depends(limit)
