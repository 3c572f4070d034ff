"""Account creation through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters
from argon2.low_level import Type
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import service as accounts
from backline.accounts.emails import InvalidEmail, normalize_email
from backline.accounts.models import Role
from backline.accounts.passwords import WeakPassword, verify_password
from backline.db import create_sessionmaker
from backline.errors import Conflict


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def test_create_normalizes_and_hashes(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        user = await accounts.create(
            session,
            email="  Ann.Lee@EXAMPLE.com ",
            password="a long pass phrase",
            display_name="  Ann Lee ",
            role=Role.STAFF,
            verified=True,
        )
    assert user.email == "ann.lee@example.com"
    assert user.display_name == "Ann Lee"
    assert user.role == "staff"
    assert user.is_verified
    params = extract_parameters(user.password_hash)
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism == 1
    assert "a long pass phrase" not in user.password_hash
    assert await verify_password(user.password_hash, "a long pass phrase")
    assert not await verify_password(user.password_hash, "a long pass phrasE")

    async with sessions() as session:
        found = await accounts.get_by_email(session, email="ANN.LEE@example.COM")
    assert found is not None
    assert found.id == user.id


async def test_a_second_account_for_the_same_address_is_refused(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await accounts.create(
            session, email="b@example.com", password="long enough", display_name="B"
        )
    with pytest.raises(Conflict) as refused:
        async with sessions() as session, session.begin():
            await accounts.create(
                session, email="B@Example.COM", password="long enough", display_name="B2"
            )
    assert refused.value.code == "email_taken"


async def test_new_accounts_are_unverified_users_by_default(engine: AsyncEngine) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await accounts.create(
            session, email="c@example.com", password="long enough", display_name="C"
        )
    assert user.role == "user"
    assert not user.is_verified


@pytest.mark.parametrize("password", ["short", "x" * 129])
async def test_password_length_is_enforced(engine: AsyncEngine, password: str) -> None:
    with pytest.raises(WeakPassword):
        async with create_sessionmaker(engine)() as session, session.begin():
            await accounts.create(
                session, email="d@example.com", password=password, display_name="D"
            )


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "a@", "@b.com", "a b@c.com", "x" * 250 + "@e.com", "a@b..com"]
)
def test_invalid_addresses_are_refused(email: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(email)


def test_internationalized_domains_are_stored_in_ascii() -> None:
    assert normalize_email("Zoe@BÜCHER.example") == "zoe@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "email", ["Zoë@example.com", "\u0430dmin@example.com", "ann@exam\u2024ple.com"]
)
def test_non_ascii_local_parts_and_lookalikes_are_refused(email: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(email)
