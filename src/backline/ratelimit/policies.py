"""The rate-limit policies: what each limits, keyed by what, and what happens without Redis.

A policy has one or more limits (`limits` notation: "5/hour", "10/minute;100/day") and one or
more keys, each counted on its own, all of which must admit a request:

* `ip`: the client address (see `clientip`);
* `user`: the signed-in user, or the address when nobody is signed in;
* `email`: the `email` field of the JSON body, normalized and counted by a keyed hash (Redis
  holds no address); absent, the key is skipped.

When Redis is unreachable a credential policy fails closed (503, nothing checked is let
through) and the rest fail open (the request proceeds unlimited), so an outage neither opens
the door to password guessing nor takes reading down with it.

Every limit can be changed without code: BACKLINE_RATE_LIMITS is a JSON object of policy name
to limits, e.g. `{"login": "20/minute;200/day", "global": "1000/minute"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from limits import RateLimitItem, parse_many

Key = Literal["ip", "user", "email"]


@dataclass(frozen=True)
class Policy:
    name: str
    limits: str
    keys: tuple[Key, ...]
    fail: Literal["open", "closed"]

    @cached_property  # parsed once, not on every check
    def items(self) -> list[RateLimitItem]:
        return parse_many(self.limits)


DEFAULTS: dict[str, Policy] = {
    policy.name: policy
    for policy in (
        Policy("global", "600/minute", ("ip",), "open"),
        Policy("register", "10/hour", ("ip",), "closed"),
        # Per address of origin only: a long per-account window would let anyone lock a
        # person out (failed passwords per account are the `throttle`'s business).
        Policy("login", "10/minute;100/day", ("ip",), "closed"),
        Policy("login_account", "10/minute", ("email",), "closed"),
        Policy("resend_verification", "5/hour", ("ip", "email"), "closed"),
        Policy("forgot_password", "5/hour", ("ip", "email"), "closed"),
        Policy("reset_password", "5/hour", ("ip",), "closed"),
        # A change of address mails the new address: per account, and per new address so
        # that many accounts together cannot fill one stranger's inbox.
        Policy("email_change", "5/hour", ("user", "email"), "closed"),
        Policy("refresh", "60/minute", ("ip",), "closed"),
        # The second step of sign-in: each challenge takes 5 codes at most, and wrong codes
        # count toward the address's lockout; this bounds how many challenges one client tries.
        Policy("mfa_verify", "10/minute;100/day", ("ip",), "closed"),
        # Options for a passkey's second step: each writes a challenge, none counts a try.
        Policy("mfa_passkey", "20/minute;200/day", ("ip",), "closed"),
        # Enrolling, removing and re-keying one's own factors: per account.
        Policy("mfa_manage", "10/minute;50/day", ("user",), "closed"),
        # External sign-in: every start and callback, and (counted apart) failed callbacks.
        Policy("oidc", "30/minute;300/day", ("ip",), "closed"),
        Policy("oidc_failure", "10/minute;50/day", ("ip",), "closed"),
        # Passkeys: each options request and each answer counts, refused assertions included.
        Policy("passkey_login", "20/minute;200/day", ("ip",), "closed"),
        Policy("passkey_register", "20/hour", ("user",), "closed"),
        Policy("upload", "60/hour", ("user",), "open"),
        Policy("chat_message", "20/minute;500/day", ("user",), "open"),
        Policy("chat_tokens", "200000/day", ("user",), "open"),
    )
}


class PolicyError(ValueError):
    pass


def load(overrides: Mapping[str, str]) -> dict[str, Policy]:
    """The default policies with the configured limits applied, each checked."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise PolicyError(f"unknown policy {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
    policies = {
        name: replace(policy, limits=overrides.get(name, policy.limits))
        for name, policy in DEFAULTS.items()
    }
    for policy in policies.values():
        try:
            if not policy.items:
                raise ValueError
        except ValueError:
            raise PolicyError(
                f"{policy.name}: {policy.limits!r} is not a limit such as '5/hour'"
            ) from None
    return policies
