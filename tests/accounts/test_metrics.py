"""The account series: wrong passwords and pauses (alike for known and unknown addresses), and
sessions ended before they expired, by reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login
from tests.scrape import sample


async def test_wrong_passwords_and_the_pause_they_cause_are_counted(
    client: httpx.AsyncClient, make_user: Any, settings: Settings
) -> None:
    await make_user("known@example.com")
    for email in ("known@example.com", "stranger@example.com"):
        failures = sample("backline_login_failures_total")
        lockouts = sample("backline_login_lockouts_total")
        for _ in range(settings.lockout_threshold):
            wrong = await client.post(
                "/api/auth/login", json={"email": email, "password": "not the password"}
            )
            assert wrong.status_code == 401
        paused = await client.post(
            "/api/auth/login", json={"email": email, "password": "not the password"}
        )
        assert paused.status_code == 429
        # The paused attempt was not checked, so not counted.
        assert sample("backline_login_failures_total") - failures == settings.lockout_threshold
        assert sample("backline_login_lockouts_total") - lockouts == 1


async def test_sessions_ended_early_are_counted_by_reason(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
) -> None:
    settings = make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS, max_sessions=2)
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await make_user("ann@example.com")
            logout = sample("backline_sessions_revoked_total", reason="logout")
            capped = sample("backline_sessions_revoked_total", reason="session_limit")
            first = bearer(await login(client, "ann@example.com"))
            await login(client, "ann@example.com")
            assert sample("backline_sessions_revoked_total", reason="session_limit") == capped
            latest = bearer(await login(client, "ann@example.com"))  # the first is ended
            assert sample("backline_sessions_revoked_total", reason="session_limit") == capped + 1
            assert (await client.post("/api/auth/logout", headers=latest)).status_code == 204
            assert sample("backline_sessions_revoked_total", reason="logout") == logout + 1
            # Ending a session already ended counts nothing more.
            assert (await client.post("/api/auth/logout", headers=first)).status_code == 401
            assert sample("backline_sessions_revoked_total", reason="logout") == logout + 1
