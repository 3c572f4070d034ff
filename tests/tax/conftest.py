"""Shared by the tax tests: both databases, an artist, staff and an admin, a valid W-9."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import Role
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.tax.models import TaxForm
from tests.accounts.conftest import GENEROUS_LIMITS, bearer, login

SSN = "401-52-7386"
SSN_DIGITS = "401527386"
EIN = "27-1938465"
EIN_DIGITS = "271938465"


def w9(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "legal_name": "Ann Marie O'Neil",
        "business_name": None,
        "federal_tax_classification": "individual",
        "exempt_payee_code": None,
        "fatca_code": None,
        "address_line1": "12 Harbor St",
        "address_line2": "Apt 4",
        "city": "Brooklyn",
        "state": "NY",
        "postal_code": "11201-1234",
        "tin_type": "ssn",
        "tin": SSN,
        "signature_name": "ann marie oneil",
        "certify": True,
    }
    form.update(changes)
    return form


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, rate_limits=GENEROUS_LIMITS)


async def signed_in(
    client: httpx.AsyncClient, make_user: Any, email: str, role: Role
) -> tuple[str, dict[str, str]]:
    account = await make_user(email, role=role, display_name=email.partition("@")[0])
    return str(account.user.id), bearer(await login(client, email))


@pytest.fixture
async def artist(client: httpx.AsyncClient, make_user: Any) -> tuple[str, dict[str, str]]:
    return await signed_in(client, make_user, "artist@example.com", Role.ARTIST)


@pytest.fixture
async def staff(client: httpx.AsyncClient, make_user: Any) -> dict[str, str]:
    return (await signed_in(client, make_user, "staff@example.com", Role.STAFF))[1]


@pytest.fixture
async def admin(client: httpx.AsyncClient, make_user: Any) -> tuple[str, dict[str, str]]:
    return await signed_in(client, make_user, "admin@example.com", Role.ADMIN)


async def forms(engine: AsyncEngine) -> list[TaxForm]:
    async with create_sessionmaker(engine)() as session:
        query = select(TaxForm).order_by(TaxForm.created_at)
        return list((await session.scalars(query)).all())
