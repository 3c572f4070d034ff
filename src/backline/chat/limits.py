"""The assistant's limits, in the shared rate-limit store (Redis when configured).

* `chat_message`: messages per user (default 20 a minute, 500 a day);
* `chat_tokens`: tokens per user per day (default 200,000), counted from the usage the
  provider reports for each answer (estimated when it reports none).

A message is admitted while the day's budget has any token left (it counts one up front);
its answer's tokens are counted afterwards. An answer larger than what was left fills the
budget rather than being refused (the sliding window refuses a hit that would overflow it).

Both limits are checked at once: with Redis their scripts travel in one write and cost one
round trip, not two, before every message. A message refused by its rate has still counted
its one token (and one refused by the budget its message): a refusal costs a token or a
message of a budget that is refusing anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from fastapi import Request

from backline.logging import get_logger
from backline.ratelimit.deps import charge, identities
from backline.ratelimit.limiter import RateLimiter
from backline.ratelimit.policies import Key

log = get_logger(__name__)
TOKENS = "chat_tokens"


async def admit(request: Request) -> Mapping[Key, str]:
    """Count a message; refuse it (429) past the message rate or the spent token budget."""
    checks = await asyncio.gather(
        charge(request, "chat_message"),
        charge(request, TOKENS, cost=1),
        return_exceptions=True,  # both run to the end; the rate's refusal is reported first
    )
    for outcome in checks:
        if isinstance(outcome, BaseException):
            raise outcome
    return await identities(request, ("user",))


async def spend(limiter: RateLimiter, who: Mapping[Key, str], tokens: int) -> None:
    """Count an answer's tokens (less the one counted on admission)."""
    cost = tokens - 1
    if cost <= 0:
        return
    decision = await limiter.check(TOKENS, who, cost=cost)
    if not decision.allowed and decision.remaining > 0:
        await limiter.check(TOKENS, who, cost=decision.remaining)
    log.info("chat_tokens_spent", tokens=tokens)
