"""Fixtures of the portal's tests: for page tests, the app's settings and a client posting
forms as a browser does (`portal`); for browser tests, a PostgreSQL database for a served app,
and a headless Chromium.

The browser tests' fixtures are sync and module-wide: Playwright's sync API runs an event loop
of its own while the browser is open, so the database is made (with `asyncio.run`) before the
browser starts and dropped after it closes; pytest sets fixtures up in the order the test names
them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from backline import migrate
from backline.app import Backline
from backline.config import Settings
from backline.db import create_engine
from tests.accounts.conftest import GENEROUS_LIMITS
from tests.conftest import (
    _postgres_reachable,
    create_postgres_database,
    drop_postgres_database,
    unavailable,
)
from tests.web.browser import CHROMIUM
from tests.web.pages import new_client


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url, rate_limits=GENEROUS_LIMITS, lockout_threshold=3
    )


@pytest.fixture
async def portal(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(app) as client:
        yield client


async def _migrated_postgres() -> str:
    url = await create_postgres_database()
    engine = create_engine(Settings(env="test", database_url=url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url


@pytest.fixture(scope="module")
def served_database() -> Iterator[str]:
    """A migrated PostgreSQL database of the module's own, for a `backline serve` process."""
    if reason := asyncio.run(_postgres_reachable()):
        unavailable(reason)
    url = asyncio.run(_migrated_postgres())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched from its path; never a downloaded browser."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()
