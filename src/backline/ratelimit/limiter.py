"""The limiter: sliding-window counters (the `limits` library) on Redis or in memory.

Each check is one atomic Lua script in Redis, so N app processes sharing Redis admit exactly as
many requests as one would; the checks of concurrent requests travel together
(`backline.pipelining`). The sliding-window counter keeps two counters per key (this window
and the last, weighted by overlap) instead of one entry per hit, so a check costs the same for a
limit of 5 as for a budget of 200,000 chat tokens; the price is that a window boundary is
approximated, never exceeded by more than the weighting allows. Keys are
`<BACKLINE_REDIS_PREFIX>:rl:...`, the two counters of a key in one hash tag, so a Redis Cluster
serves them too.

When Redis fails, the limiter trips for a second (no request waits on a dead server), decides by
each policy's failure mode, logs one warning per outage and counts every failure in the
metrics; the first success afterwards logs the recovery. No restart is ever needed: the Redis
client reconnects on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter

from backline.config import Settings
from backline.errors import ServiceUnavailable
from backline.logging import get_logger
from backline.metrics import RATE_LIMIT_DECISIONS, RATE_LIMIT_DEGRADED, RATE_LIMIT_STORAGE_ERRORS
from backline.pipelining import Pipeliner
from backline.ratelimit.policies import Key, Policy, load

log = get_logger(__name__)
TRIP_SECONDS = 1.0


@dataclass(frozen=True)
class Decision:
    """The outcome for one policy; `limit`, `remaining` and `reset` describe its tightest limit."""

    policy: str
    allowed: bool
    limit: int
    window: int
    remaining: int  # -1 when not asked for (see `check`)
    reset: int  # seconds until the window admits again
    counted: bool = True  # False when nothing was counted (storage away, no identity)

    @property
    def reportable(self) -> bool:
        return self.counted and self.remaining >= 0


def _uncounted(policy: Policy) -> Decision:
    item = policy.items[0]
    return Decision(policy.name, True, item.amount, item.get_expiry(), item.amount, 0, False)


class RateLimitUnavailable(ServiceUnavailable):
    code = "rate_limit_unavailable"


def create_storage(settings: Settings) -> Storage:
    if not settings.redis_url:
        return MemoryStorage()
    return RedisStorage(
        f"async+{settings.redis_url}",
        implementation="redispy",
        key_prefix=f"{settings.redis_prefix}:rl",
        wrap_exceptions=True,
        # Long enough that a busy event loop (a burst of requests) is not taken for an outage,
        # which would fail the open policies open just when they matter; a Redis that is
        # really gone refuses connections at once, and the breaker then skips it for a second.
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )


def _pipeline_scripts(storage: RedisStorage) -> Pipeliner | None:
    """Send the sliding-window scripts of a redis-py backed storage through a `Pipeliner`.

    The `limits` bridge calls its script objects as `await script(keys, args)`; pipelined
    stand-ins take their place, so the library still owns the keys, scripts and counting."""
    bridge = storage.bridge
    if not isinstance(bridge, RedispyBridge):
        return None  # another client library: its scripts are left as they are
    client: object = bridge.get_connection()
    if not Pipeliner.supports(client):
        return None  # a cluster, a sentinel or TLS: likewise
    pipeliner = Pipeliner(client)
    for name in ("lua_acquire_sliding_window", "lua_sliding_window"):
        setattr(bridge, name, pipeliner.script(getattr(bridge, name)))
    return pipeliner


class RateLimiter:
    def __init__(
        self,
        policies: Mapping[str, Policy],
        storage: Storage,
        *,
        clock: Any = time.monotonic,
    ) -> None:
        self.policies = dict(policies)
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self.pipeliner = _pipeline_scripts(storage) if isinstance(storage, RedisStorage) else None
        self.clock = clock
        self._tripped_until = 0.0
        self._outage_started: float | None = None
        self._decisions: dict[tuple[str, str], Counter] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(load(settings.rate_limits), create_storage(settings))

    async def check(
        self, name: str, identities: Mapping[Key, str], *, cost: int = 1, stats: bool = True
    ) -> Decision:
        """Count one request (of weight `cost`) against policy `name` for these identities.

        With `stats=False` the window's remaining count is read only when the request is
        refused (for Retry-After): one round trip to Redis instead of two.
        Raises `RateLimitUnavailable` when storage is down and the policy fails closed.
        """
        policy = self.policies[name]
        if self.clock() < self._tripped_until:
            return self._degraded(policy)
        try:
            decision = await self._count(policy, identities, cost, stats)
        except StorageError as exc:
            self._trip(exc)
            return self._degraded(policy)
        self._recovered()
        self._count_decision(name, "allowed" if decision.allowed else "limited")
        return decision

    def _count_decision(self, policy: str, outcome: str) -> None:
        counter = self._decisions.get((policy, outcome))
        if counter is None:  # `labels()` builds and looks up a label tuple on every call
            counter = self._decisions[policy, outcome] = RATE_LIMIT_DECISIONS.labels(
                policy, outcome
            )
        counter.inc()

    async def _count(
        self, policy: Policy, identities: Mapping[Key, str], cost: int, stats: bool
    ) -> Decision:
        tightest: Decision | None = None
        for key in policy.keys:
            identity = identities.get(key)
            if identity is None:
                continue
            for item in policy.items:
                args = (item, policy.name, key, identity)
                if stats and self.pipeliner is not None:
                    # Both scripts in one write: Redis runs them in order, so the window read
                    # after the hit sees it, and the two cost one round trip, not two.
                    hit, read = await asyncio.gather(
                        self.strategy.hit(*args, cost=cost),
                        self.strategy.get_window_stats(*args),
                        return_exceptions=True,  # both are awaited to the end, whatever fails
                    )
                    if isinstance(hit, BaseException):
                        raise hit
                    if isinstance(read, BaseException):
                        raise read
                    allowed, window = hit, read
                else:
                    allowed = await self.strategy.hit(*args, cost=cost)
                    window = None
                remaining, reset = -1, 0
                if stats or not allowed:
                    window = window or await self.strategy.get_window_stats(*args)
                    remaining = max(0, window.remaining)
                    reset = max(1, round(window.reset_time - time.time()))
                decision = Decision(
                    policy=policy.name,
                    allowed=allowed,
                    limit=item.amount,
                    window=item.get_expiry(),
                    remaining=remaining,
                    reset=reset,
                )
                if not allowed:
                    return decision
                if tightest is None or 0 <= decision.remaining < tightest.remaining:
                    tightest = decision
        if tightest is None:  # no identity to count against (e.g. no email given)
            return _uncounted(policy)
        return tightest

    def _degraded(self, policy: Policy) -> Decision:
        self._count_decision(policy.name, f"fail_{policy.fail}")
        if policy.fail == "closed":
            raise RateLimitUnavailable(
                "Sign-in and similar requests are paused for a moment; please retry shortly.",
                headers={"Retry-After": "5"},
            )
        return _uncounted(policy)

    def _trip(self, error: StorageError) -> None:
        RATE_LIMIT_STORAGE_ERRORS.inc()
        now = self.clock()
        self._tripped_until = now + TRIP_SECONDS
        if self._outage_started is None:
            self._outage_started = now
            RATE_LIMIT_DEGRADED.set(1)
            log.warning("ratelimit_storage_down", error=type(error.storage_error).__name__)

    def _recovered(self) -> None:
        if self._outage_started is not None:
            log.info(
                "ratelimit_storage_recovered", after_s=round(self.clock() - self._outage_started, 1)
            )
            self._outage_started = None
            RATE_LIMIT_DEGRADED.set(0)

    async def aclose(self) -> None:
        if self.pipeliner is not None:
            await self.pipeliner.aclose()
        if isinstance(self.storage, RedisStorage):
            client = getattr(self.storage.bridge, "storage", None)  # redis-py's client
            if client is not None:
                await client.aclose()
        elif isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()
