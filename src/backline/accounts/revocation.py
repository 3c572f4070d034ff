"""Immediate revocation: an access token stops working within a second of its session ending.

Access tokens are stateless for 15 minutes; each names its session (`sid`), and every request
asks whether that session was revoked:

* with Redis, one `MGET` of `<prefix>:revoked:<sid>`, a key written when the session is
  revoked and kept as long as any access token of it can live, and of `<prefix>:revoked:intact`:
  every app process sees a revocation at once. Concurrent requests' checks share a round trip
  (`backline.pipelining`). Should Redis fail, the database answers instead. Should Redis come
  back without its data (restarted without persistence, flushed, replaced), the `intact` key is
  missing too: the database answers while the markers of the sessions revoked within a token's
  lifetime are written again from it, and then `intact`, so a session ended before the loss
  stays ended;
* without Redis, the database's `auth_sessions` row, through a per-process cache whose entries
  are at most one second old.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.accounts.models import AuthSession
from backline.accounts.tokens import now
from backline.config import Settings
from backline.errors import ServiceUnavailable
from backline.logging import get_logger
from backline.pipelining import Pipeliner

log = get_logger(__name__)
CACHE_SECONDS = 1.0
CACHE_LIMIT = 100_000


class Revocations:
    def __init__(
        self,
        settings: Settings,
        redis: Redis | None,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        pipeliner: Pipeliner | None = None,
    ) -> None:
        """`pipeliner`: one to share (the rate limiter's) when it speaks to the same server,
        so that a request's revocation check and its limits can go out in one write."""
        self.redis = redis
        self._owns_pipeliner = pipeliner is None or not pipeliner.serves(redis)
        if not self._owns_pipeliner:
            self.pipeliner: Pipeliner | None = pipeliner  # checks go through it when set
        else:
            self.pipeliner = Pipeliner(redis) if Pipeliner.supports(redis) else None
        self.sessionmaker = sessionmaker
        self.prefix = f"{settings.redis_prefix}:revoked:"
        self.intact = f"{self.prefix}intact"  # present while Redis holds every marker
        # A revoked marker must outlive every access token that names the session.
        self.ttl = settings.access_token_minutes * 60 + 60
        self._cache: dict[uuid.UUID, tuple[bool, float]] = {}
        self._restoring: asyncio.Task[None] | None = None

    async def revoked(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Announce revoked sessions (their rows are updated by the caller's transaction)."""
        ids = list(session_ids)
        for session_id in ids:
            self._cache.pop(session_id, None)
        if self.redis is None or not ids:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.set(f"{self.prefix}{session_id}", b"1", ex=self.ttl)
                await pipe.execute()
        except RedisError as exc:
            # Other processes check only Redis: an unpublished revocation would leave the
            # session's access tokens working there. Fail the request; its transaction rolls
            # back, and the person can simply try again.
            log.error("revocation_not_published", error=type(exc).__name__, sessions=len(ids))
            raise ServiceUnavailable(
                "Signing out is not possible right now; please try again shortly.",
                code="revocation_unavailable",
                headers={"Retry-After": "5"},
            ) from None

    async def is_revoked(self, session_id: uuid.UUID) -> bool:
        if self.pipeliner is not None:
            try:
                intact, marker = await self.pipeliner.execute(
                    "MGET", self.intact, f"{self.prefix}{session_id}"
                )
            except RedisError as exc:
                log.warning("revocation_check_fell_back", error=type(exc).__name__)
                return await self._from_database(session_id)
            if intact is not None:
                return marker is not None
            self._restore_soon()  # Redis lost its markers: the database answers meanwhile
            return await self._from_database(session_id)
        cached = self._cache.get(session_id)
        if cached is not None and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0]
        return await self._from_database(session_id)

    async def aclose(self) -> None:
        if self._restoring is not None:
            self._restoring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restoring
        if self.pipeliner is not None and self._owns_pipeliner:
            await self.pipeliner.aclose()

    def _restore_soon(self) -> None:
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.create_task(self._restore())

    async def _restore(self) -> None:
        """Write again the markers of every session revoked within a token's lifetime, then
        `intact`. Several processes may do so at once: each write is the same."""
        assert self.redis is not None
        since = now() - timedelta(seconds=self.ttl)
        try:
            async with self.sessionmaker() as session:
                ids = list(
                    await session.scalars(
                        select(AuthSession.id).where(AuthSession.revoked_at > since)
                    )
                )
            async with self.redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.set(f"{self.prefix}{session_id}", b"1", ex=self.ttl)
                pipe.set(self.intact, b"1")
                await pipe.execute()
        except Exception as exc:  # the next check tries again
            log.warning("revocations_not_restored", error=type(exc).__name__)
            return
        log.warning("revocations_restored", sessions=len(ids))

    async def _from_database(self, session_id: uuid.UUID) -> bool:
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(AuthSession.revoked_at, AuthSession.expires_at).where(
                        AuthSession.id == session_id
                    )
                )
            ).one_or_none()
        revoked = row is None or row.revoked_at is not None or row.expires_at <= now()
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[session_id] = (revoked, time.monotonic())
        return revoked
