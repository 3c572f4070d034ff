"""The Redis connection, when `BACKLINE_REDIS_URL` is set (otherwise in-process memory is used).

Every key Backline writes starts with the deployment's prefix (`BACKLINE_REDIS_PREFIX`), so
several deployments, or several test runs, share one server without seeing each other's data.
"""

from __future__ import annotations

from redis.asyncio import Redis

from backline.config import Settings


def create_redis(settings: Settings) -> Redis | None:
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=30,
        client_name="backline",
    )


def key(settings: Settings, *parts: str) -> str:
    return ":".join((settings.redis_prefix, *parts))
