"""Sign-in's three steps: no connection held while hashing, and writes that check the hash."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts import auth, passwords, recovery, signin, throttle
from backline.accounts.auth import AuthFailure, TokenPair
from backline.accounts.models import AuthSession, RefreshToken, User
from backline.accounts.passwords import hash_password, verify_password
from backline.accounts.revocation import Revocations
from backline.accounts.throttle import LoginThrottle
from backline.accounts.tokens import digest
from backline.app import Backline, create_app
from backline.audit import service as audit
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import Engines, create_sessionmaker, utcnow
from tests.accounts.conftest import PASSWORD, login, outbox, token_in

CLIENT = ClientInfo(ip="198.51.100.4", user_agent="test")


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def _sign_in(
    engine: AsyncEngine, settings: Settings, email: str, password: str, *, between: Any = None
) -> TokenPair | AuthFailure:
    """The three steps as the route runs them; `between` runs after the first step."""
    async with signin.reading(Engines.of(engine)) as connection:
        attempt = await signin.start(connection, email=email)
    assert isinstance(attempt, signin.Attempt)
    if between is not None:
        await between()
    return await _finish(engine, settings, await signin.check(attempt, password))


async def _finish(
    engine: AsyncEngine, settings: Settings, checked: signin.Checked
) -> TokenPair | AuthFailure:
    """The third step as the route runs it."""
    if checked.right:
        async with signin.writing(Engines.of(engine)) as connection:
            return await signin.admit(
                connection,
                settings=settings,
                revocations=Revocations(settings, None, create_sessionmaker(engine)),
                checked=checked,
                client=CLIENT,
            )
    async with create_sessionmaker(engine)() as session, session.begin():
        return await signin.refuse(session, settings=settings, checked=checked, client=CLIENT)


async def _count(engine: AsyncEngine, model: Any) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _set_hash(engine: AsyncEngine, user_id: Any, password_hash: str) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )


async def test_no_connection_is_held_while_the_password_is_hashed(
    app: Backline, client: httpx.AsyncClient, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user("ann@example.com")
    pool = app.state.engine.sync_engine.pool
    held: list[int] = []

    async def watched(stored_hash: str, password: str) -> bool:
        held.append(pool.checkedout())
        return await verify_password(stored_hash, password)

    monkeypatch.setattr(signin, "verify_password", watched)
    await login(client, "ann@example.com")
    wrong = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": "not the password"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert held == [0, 0, 0]


async def test_the_connection_goes_back_to_the_pool_as_it_came(
    make_settings: Any, database_url: str, make_user: Any
) -> None:
    # On PostgreSQL the writes run without a transaction; the next user of the one pooled
    # connection must still get one.
    settings = make_settings(database_url=database_url, db_pool_size=1, db_max_overflow=0)
    app = create_app(settings, configure_logs=False)
    async with LifespanManager(app):
        engine: AsyncEngine = app.state.engine
        await make_user("ann@example.com")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await login(client, "ann@example.com")
        async with engine.connect() as connection:  # the one connection of the pool
            probe = audit.values(event="probe", user_id=None, client=None)
            await connection.execute(insert(AuditEvent), probe)
            await connection.rollback()
        async with engine.connect() as connection:
            kept = await connection.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "probe")
            )
        assert kept == 0


async def test_a_sign_in_refused_for_a_full_hashing_queue_counts_for_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user("ann@example.com")
    monkeypatch.setattr(passwords, "MAX_WAITING_PER_CORE", 0)  # as if a flood filled it
    busy = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": "not the password"}
    )
    assert busy.status_code == 503
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["code"] == "busy"
    assert await _count(engine, LoginThrottle) == 0  # not a wrong password
    assert await _count(engine, AuthSession) == 0
    monkeypatch.setattr(passwords, "MAX_WAITING_PER_CORE", 32)
    await login(client, "ann@example.com")


async def test_a_sign_in_writes_its_session_token_and_event_together(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    account = await make_user("ann@example.com")
    pair = await _sign_in(engine, settings, "ann@example.com", PASSWORD)
    assert isinstance(pair, TokenPair)
    async with create_sessionmaker(engine)() as session:
        opened = await session.get(AuthSession, pair.session_id)
        token = await session.scalar(select(RefreshToken))
        event = await session.scalar(select(AuditEvent).where(AuditEvent.event == "login_ok"))
    assert opened is not None
    assert (opened.user_id, opened.ip, opened.user_agent) == (account.user.id, CLIENT.ip, "test")
    assert opened.created_at == opened.last_used_at < opened.expires_at
    assert token is not None
    assert (token.session_id, token.token_hash) == (pair.session_id, digest(pair.refresh_token))
    assert event is not None
    assert (event.user_id, event.ip, event.details) == (
        account.user.id,
        CLIENT.ip,
        {"session_id": str(pair.session_id), "method": "password"},
    )


async def test_a_sign_in_whose_last_write_fails_leaves_nothing_behind(
    engine: AsyncEngine, settings: Settings, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user("ann@example.com")
    taken = audit.values(event="probe", user_id=None, client=None)
    async with engine.begin() as connection:
        await connection.execute(insert(AuditEvent), taken)
    real_values = audit.values

    def clashing(**kwargs: Any) -> dict[str, Any]:
        return {**real_values(**kwargs), "id": taken["id"]}  # the event's INSERT must fail

    monkeypatch.setattr(signin.audit, "values", clashing)
    with pytest.raises(IntegrityError):
        await _sign_in(engine, settings, "ann@example.com", PASSWORD)
    assert await _count(engine, AuthSession) == 0  # nor its refresh token, written before it
    assert await _count(engine, RefreshToken) == 0


async def test_a_right_password_after_a_pause_ran_out_starts_afresh(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    await make_user("ann@example.com")
    for _ in range(settings.lockout_threshold):
        await _sign_in(engine, settings, "ann@example.com", "guess")
    async with signin.reading(Engines.of(engine)) as connection:
        paused = await signin.start(connection, email="ann@example.com")
    assert isinstance(paused, AuthFailure)
    assert paused.code == "account_locked"
    with time_machine.travel(utcnow() + timedelta(minutes=1, seconds=5), tick=False):
        assert isinstance(await _sign_in(engine, settings, "ann@example.com", PASSWORD), TokenPair)
    assert await _count(engine, LoginThrottle) == 0  # the pause and its level are gone


async def test_a_sign_in_clears_a_count_begun_while_it_hashed(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    await make_user("ann@example.com")
    right = await _attempt(engine, "ann@example.com", PASSWORD)  # no count on record yet
    await _sign_in(engine, settings, "ann@example.com", "guess")  # meanwhile, one wrong
    assert await _count(engine, LoginThrottle) == 1
    assert isinstance(await _finish(engine, settings, right), TokenPair)
    assert await _count(engine, LoginThrottle) == 0


async def test_a_right_password_on_an_unverified_address_clears_the_count_and_says_so(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    await make_user("ann@example.com", verified=False)
    await _sign_in(engine, settings, "ann@example.com", "guess")
    assert await _count(engine, LoginThrottle) == 1
    outcome = await _sign_in(engine, settings, "ann@example.com", PASSWORD)
    assert isinstance(outcome, AuthFailure)
    assert (outcome.status, outcome.code) == (403, "email_not_verified")
    assert await _count(engine, LoginThrottle) == 0  # committed, though the answer is a 403
    assert await _count(engine, AuthSession) == 0


async def _pause(engine: AsyncEngine, email: str, *, until: Any) -> None:
    """Put the address on record as paused until `until`, as other attempts would."""
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            insert(LoginThrottle).values(
                key=throttle.key_for(email),
                failed_logins=0,
                lock_level=1,
                locked_until=until,
                updated_at=utcnow(),
            )
        )


async def test_clearing_for_a_right_password_leaves_a_pause_standing(
    engine: AsyncEngine,
) -> None:
    await _pause(engine, "ann@example.com", until=utcnow() + timedelta(minutes=1))
    await _pause(engine, "bob@example.com", until=utcnow() - timedelta(seconds=1))
    async with Engines.of(engine).autocommit.connect() as connection:
        for email in ("ann@example.com", "bob@example.com"):
            await throttle.clear(connection, key=throttle.key_for(email), unless_paused=True)
    async with create_sessionmaker(engine)() as session:
        keys = set(await session.scalars(select(LoginThrottle.key)))
    assert keys == {throttle.key_for("ann@example.com")}  # the spent pause went
    async with create_sessionmaker(engine)() as session, session.begin():
        await throttle.clear(session, key=throttle.key_for("ann@example.com"))  # a reset
    assert await _count(engine, LoginThrottle) == 0


async def test_an_unverified_address_paused_while_its_password_hashed_stays_paused(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    await make_user("ann@example.com", verified=False)
    right = await _attempt(engine, "ann@example.com", PASSWORD)
    await _pause(engine, "ann@example.com", until=utcnow() + timedelta(minutes=1))
    outcome = await _finish(engine, settings, right)
    assert isinstance(outcome, AuthFailure)
    assert (outcome.status, outcome.code) == (429, "account_locked")
    assert await _count(engine, LoginThrottle) == 1


async def test_an_unverified_address_clears_a_count_begun_while_it_hashed(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    await make_user("ann@example.com", verified=False)
    right = await _attempt(engine, "ann@example.com", PASSWORD)  # no count on record yet
    await _sign_in(engine, settings, "ann@example.com", "guess")  # meanwhile, one wrong
    assert await _count(engine, LoginThrottle) == 1
    outcome = await _finish(engine, settings, right)
    assert isinstance(outcome, AuthFailure)
    assert outcome.code == "email_not_verified"
    assert await _count(engine, LoginThrottle) == 0


async def test_a_password_rechecked_while_others_pause_the_address_is_refused(
    engine: AsyncEngine, settings: Settings, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await make_user("ann@example.com")

    async def paused_meanwhile(stored_hash: str, password: str) -> bool:
        right = await verify_password(stored_hash, password)
        await _pause(engine, "ann@example.com", until=utcnow() + timedelta(minutes=1))
        return right

    monkeypatch.setattr(auth, "verify_password", paused_meanwhile)
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await session.get(User, account.user.id)
        assert user is not None
        outcome = await auth.check_password_again(
            session, settings=settings, user=user, password=PASSWORD, client=CLIENT
        )
    assert outcome is not None
    assert (outcome.status, outcome.code) == (429, "account_locked")
    assert await _count(engine, LoginThrottle) == 1  # the pause stands


async def test_a_password_changed_after_it_was_read_opens_no_session(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    account = await make_user("ann@example.com")

    async def reset() -> None:  # a reset commits while the old password is being checked
        await _set_hash(engine, account.user.id, await hash_password("a brand new passphrase"))

    outcome = await _sign_in(engine, settings, "ann@example.com", PASSWORD, between=reset)
    assert isinstance(outcome, AuthFailure)
    assert (outcome.status, outcome.code) == (401, "invalid_credentials")
    assert await _count(engine, AuthSession) == 0
    assert await _count(engine, RefreshToken) == 0


async def test_a_rehash_never_overwrites_a_password_changed_meanwhile(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    account = await make_user("ann@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await _set_hash(engine, account.user.id, weak)
    new_hash = await hash_password("a brand new passphrase")

    async def change() -> None:
        await _set_hash(engine, account.user.id, new_hash)

    outcome = await _sign_in(engine, settings, "ann@example.com", PASSWORD, between=change)
    assert isinstance(outcome, AuthFailure)
    async with create_sessionmaker(engine)() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == account.user.id))
    assert stored == new_hash


async def _attempt(engine: AsyncEngine, email: str, password: str) -> signin.Checked:
    """The first two steps of a sign-in, the writes left for later."""
    async with signin.reading(Engines.of(engine)) as connection:
        attempt = await signin.start(connection, email=email)
    assert isinstance(attempt, signin.Attempt)
    return await signin.check(attempt, password)


async def test_a_sign_in_racing_a_reset_never_outlives_it(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    make_user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_user("ann@example.com")
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    token = token_in((await outbox(engine, "password_reset"))[0])
    checked = await _attempt(engine, "ann@example.com", PASSWORD)  # the old password, right
    racing: list[asyncio.Task[Any]] = []
    real_end_sessions = recovery.end_sessions

    async def end_sessions_after_a_sign_in(*args: Any, **kwargs: Any) -> int:
        # The worst moment: the new hash is written but not committed, and the sessions to
        # end are about to be listed. The sign-in must wait for the reset, then fail.
        racing.append(asyncio.create_task(_finish(engine, settings, checked)))
        await asyncio.sleep(0.3)
        assert not racing[0].done()
        return await real_end_sessions(*args, **kwargs)

    monkeypatch.setattr(recovery, "end_sessions", end_sessions_after_a_sign_in)
    reset = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": "a brand new pass 42"}
    )
    assert reset.status_code == 204
    outcome = await racing[0]
    assert isinstance(outcome, AuthFailure)
    assert outcome.code == "invalid_credentials"
    async with create_sessionmaker(engine)() as session:
        active = await session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.revoked_at.is_(None))
        )
    assert active == 0


async def test_attempts_under_way_when_the_address_is_paused_are_refused_alike(
    engine: AsyncEngine, settings: Settings, make_user: Any
) -> None:
    await make_user("ann@example.com")
    right = await _attempt(engine, "ann@example.com", PASSWORD)
    wrong = await _attempt(engine, "ann@example.com", "not the password")
    for _ in range(settings.lockout_threshold):  # meanwhile, others pause the address
        assert (await _sign_in(engine, settings, "ann@example.com", "guess")).code == (
            "invalid_credentials"
        )
    answers = [await _finish(engine, settings, right), await _finish(engine, settings, wrong)]
    # The same answer whatever the password: no session, and no further count.
    assert [(a.status, a.code) for a in answers] == [(429, "account_locked")] * 2
    assert answers[0].retry_after > 0
    assert await _count(engine, AuthSession) == 0
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(LoginThrottle))
    assert row is not None
    assert (row.lock_level, row.failed_logins) == (1, 0)


async def test_an_address_that_is_no_address_is_counted_like_any_other(
    engine: AsyncEngine, settings: Settings
) -> None:
    for _ in range(settings.lockout_threshold):
        outcome = await _sign_in(engine, settings, "not an address", PASSWORD)
        assert isinstance(outcome, AuthFailure)
        assert outcome.code == "invalid_credentials"
    async with signin.reading(Engines.of(engine)) as connection:
        paused = await signin.start(connection, email="not an address")
    assert isinstance(paused, AuthFailure)
    assert (paused.status, paused.code) == (429, "account_locked")
    assert paused.retry_after is not None
    assert paused.retry_after > 0
