"""Helpers for the account tests: users made through the service, tokens read from the outbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import service as accounts
from backline.accounts.models import Role, User
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.email.models import OutboxEmail

PASSWORD = "correct horse battery staple"
GENEROUS_LIMITS = {
    "global": "100000/minute",
    "login": "100000/minute",
    "register": "100000/minute",
    "resend_verification": "100000/minute",
    "forgot_password": "100000/minute",
    "reset_password": "100000/minute",
    "refresh": "100000/minute",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)


@dataclass
class Account:
    user: User
    email: str
    password: str


@pytest.fixture
def make_user(engine: AsyncEngine) -> Callable[..., Any]:
    async def make(
        email: str = "ann@example.com",
        *,
        password: str = PASSWORD,
        role: Role = Role.USER,
        verified: bool = True,
        display_name: str = "Ann",
    ) -> Account:
        async with create_sessionmaker(engine)() as session, session.begin():
            user = await accounts.create(
                session,
                email=email,
                password=password,
                display_name=display_name,
                role=role,
                verified=verified,
            )
        return Account(user, email, password)

    return make


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
