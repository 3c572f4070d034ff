"""Helpers for the account tests: users made through the service, tokens read from the outbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.config import Settings
from backline.db import create_sessionmaker
from backline.email.models import OutboxEmail
from tests.conftest import DEFAULT_PASSWORD as PASSWORD

GENEROUS_LIMITS = {
    "global": "100000/minute",
    "login": "100000/minute",
    "login_account": "100000/minute",
    "register": "100000/minute",
    "resend_verification": "100000/minute",
    "forgot_password": "100000/minute",
    "reset_password": "100000/minute",
    "email_change": "100000/minute",
    "refresh": "100000/minute",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)


async def outbox(engine: AsyncEngine, template: str | None = None) -> list[OutboxEmail]:
    async with create_sessionmaker(engine)() as session:
        query = select(OutboxEmail).order_by(OutboxEmail.created_at)
        if template is not None:
            query = query.where(OutboxEmail.template == template)
        return list((await session.scalars(query)).all())


def token_in(message: OutboxEmail) -> str:
    match = re.search(r"token=([A-Za-z0-9_-]+)", message.text_body or "")
    assert match, message.text_body
    return match.group(1)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}
