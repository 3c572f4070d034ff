"""Signing in with a password, in three steps, so that no connection waits on a hash.

1. `start` reads, on an autocommit connection (`reading`) that is given back at once: is the
   address paused, and what account (if any) does it name. A paused address is answered 429
   here, password unread.
2. `check` hashes, with no connection and no transaction held. An unknown address is checked
   against a dummy hash, so it costs what a wrong password costs. A right password whose hash
   used older parameters is rehashed here too.
3. A wrong password is counted by `refuse`, in a session's transaction (and may pause the
   address, see `auth.count_failure`). A right one is let in by `admit`, on a connection of its
   own (`writing`): the session, its refresh token and its audit event, then the count cleared
   (not a pause that other attempts set meanwhile: the session is then not opened).
   On PostgreSQL the three rows are one statement, run without a transaction around it; on
   SQLite, three INSERTs in one transaction. On the same connection the account's sessions
   past BACKLINE_MAX_SESSIONS are then ended (`sessions.cap`): one UPDATE more.

`open_session` is the one way a session opens, whatever proved the person: a password here
(guarded as above, through `admit`), or a passkey or an external provider (`passkeys`, `oidc`),
each naming its `method` in the `login_ok` event.

An Argon2id check takes tens of milliseconds. Held across it, a pooled connection would sit
idle in a transaction, and a burst of sign-ins would take every connection of the pool from
every other request. Steps 1 and `admit` run Core statements on bare connections, not in an
ORM session, whose bookkeeping costs more than their statements do (sign-in is hot).

Between steps 1 and 3 the password may change (a reset, say), or other attempts may pause the
address. The session is then not opened: its INSERT copies the account's row (share-locked)
only while it still has the hash that was checked and the address is not paused, so a password
that was right a moment ago cannot outlive the reset that replaced it. An attempt refused for
a pause gets the same 429 whatever its password. The hash guard also keeps a rehash from
overwriting a new password.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Insert,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backline.accounts import sessions as open_sessions
from backline.accounts import throttle
from backline.accounts.auth import (
    DUMMY_HASH,
    AuthFailure,
    TokenPair,
    count_failure,
    locked,
)
from backline.accounts.emails import InvalidEmail, normalize_email
from backline.accounts.models import AuthSession, RefreshToken, User
from backline.accounts.passwords import hash_password, needs_rehash, verify_password
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import digest, issue_access, new_opaque, now
from backline.audit import service as audit
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.context import ClientInfo
from backline.db import Engines


@dataclass(frozen=True)
class Account:
    """What signing in needs to know of an account."""

    id: uuid.UUID
    email: str
    display_name: str
    password_hash: str
    verified: bool

    @property
    def is_verified(self) -> bool:
        return self.verified


@dataclass(frozen=True)
class Attempt:
    """A sign-in between its steps: the address's throttle key and its account."""

    key: str
    account: Account | None


@dataclass(frozen=True)
class Checked:
    attempt: Attempt
    right: bool  # the password matched the account's hash
    new_hash: str | None = None  # the password hashed anew, when the parameters changed


_users = cast(Table, User.__table__)
_sessions = cast(Table, AuthSession.__table__)
_tokens = cast(Table, RefreshToken.__table__)
_events = cast(Table, AuditEvent.__table__)
_throttles = cast(Table, throttle.LoginThrottle.__table__)

# Built once: building a statement costs more than executing a cached one (sign-in is hot).
# The address's throttle row and its account, either or both absent, in one round trip.
_START = select(
    _throttles.c.locked_until,
    _users.c.id,
    _users.c.email,
    _users.c.display_name,
    _users.c.password_hash,
    _users.c.email_verified_at.is_not(None).label("verified"),
).select_from(
    select(literal(1).label("one"))
    .subquery("anchor")
    .outerjoin(_throttles, _throttles.c.key == bindparam("key"))
    .outerjoin(_users, func.lower(_users.c.email) == bindparam("email"))
)
_UNCHANGED = (_users.c.id == bindparam("user_id")) & (
    _users.c.password_hash == bindparam("checked_hash")
)


def _param(name: str, table: Table, column: str) -> BindParameter[Any]:
    return bindparam(name, type_=table.c[column].type)


# A password's session opens only while the account has the hash that was checked (a reset
# since then wins) and the address is not paused (other attempts, under way at the same time,
# may have paused it). The account's row is share-locked: a reset that has changed the hash but
# not yet committed makes this wait, and then find the hash changed. A session proved otherwise
# (a passkey, a provider) opens while the account exists.
_MAY_OPEN = _UNCHANGED & ~exists().where(
    _throttles.c.key == bindparam("key"), _throttles.c.locked_until > bindparam("moment")
)
_EXISTS = _users.c.id == bindparam("user_id")


def _session_insert(guard: Any) -> Insert:
    return insert(_sessions).from_select(
        ["id", "user_id", "user_agent", "ip", "created_at", "last_used_at", "expires_at"],
        select(
            _param("session_id", _sessions, "id"),
            _users.c.id,
            _param("user_agent", _sessions, "user_agent"),
            _param("ip", _sessions, "ip"),
            _param("moment", _sessions, "created_at"),
            _param("moment", _sessions, "last_used_at"),
            _param("expires_at", _sessions, "expires_at"),
        )
        .where(guard)
        .with_for_update(read=True, of=_users),
    )


_ADD_TOKEN = insert(_tokens).values(
    id=bindparam("token_id"),
    session_id=bindparam("session_id"),
    token_hash=bindparam("token_hash"),
    created_at=bindparam("moment"),
)
_EVENT_COLUMNS = [column.name for column in _events.c]
_ADD_EVENT = insert(_events).values({name: bindparam(f"event_{name}") for name in _EVENT_COLUMNS})


def _open_in_one_statement(session_insert: Insert, *, clear: bool) -> Insert:
    """The session, its refresh token, its audit event (and, with `clear`, the cleared count)
    as one PostgreSQL statement.

    Data-modifying WITH clauses run as one statement, atomic by itself: with no BEGIN and no
    COMMIT, a sign-in's writes take one round trip instead of six. Each part selects from the
    one before it, so nothing is written when the guard finds the hash changed. The count is
    cleared unless the address was paused meanwhile: the DELETE rechecks a row another attempt
    locked and committed since, and leaves it.
    """
    opened = session_insert.returning(_sessions.c.id).cte("opened")
    token = (
        insert(_tokens)
        .from_select(
            ["id", "session_id", "token_hash", "created_at"],
            select(
                _param("token_id", _tokens, "id"),
                opened.c.id,
                _param("token_hash", _tokens, "token_hash"),
                _param("moment", _tokens, "created_at"),
            ),
        )
        .returning(_tokens.c.session_id)
        .cte("token")
    )
    event = select(*(_param(f"event_{name}", _events, name) for name in _EVENT_COLUMNS))
    statement = (
        insert(_events)
        .from_select(_EVENT_COLUMNS, event.select_from(token))
        .returning(_events.c.id)
    )
    if not clear:
        return statement
    cleared = (
        delete(_throttles)
        .where(
            _throttles.c.key == bindparam("key"),
            or_(
                _throttles.c.locked_until.is_(None),
                _throttles.c.locked_until <= bindparam("moment"),
            ),
            exists(select(token.c.session_id)),
        )
        .cte("cleared")
    )
    return statement.add_cte(cleared)  # rendered though nothing selects from it, as PG runs it


@dataclass(frozen=True)
class _Opening:
    """The statements that open a session: one for PostgreSQL, the first of three for SQLite."""

    in_one: Insert
    session: Insert


def _opening(guard: Any, *, clear: bool) -> _Opening:
    session_insert = _session_insert(guard)
    return _Opening(_open_in_one_statement(session_insert, clear=clear), session_insert)


# Built once: building a statement costs more than executing a cached one (sign-in is hot).
_BY_PASSWORD = _opening(_MAY_OPEN, clear=True)
_BY_OTHER_MEANS = _opening(_EXISTS, clear=False)
_REHASH = update(_users).where(_UNCHANGED).values(password_hash=bindparam("new_hash"))


_ACCOUNT = select(
    _users.c.id,
    _users.c.email,
    _users.c.display_name,
    _users.c.password_hash,
    _users.c.email_verified_at.is_not(None).label("verified"),
).where(_users.c.id == bindparam("user_id"))


async def account_of(connection: AsyncConnection, *, user_id: uuid.UUID) -> Attempt | None:
    """An account known by its ID (a second step names it), as an attempt already past its
    password: its throttle key and its row; None when the account is gone."""
    row = (await connection.execute(_ACCOUNT, {"user_id": user_id})).first()
    if row is None:
        return None
    account = Account(row.id, row.email, row.display_name, row.password_hash, row.verified)
    return Attempt(throttle.key_for(account.email), account)


async def rehash(connection: AsyncConnection, *, checked: Checked) -> None:
    """Store a right password's new hash (see `check`) when no session is opened now."""
    account = checked.attempt.account
    if account is None or not checked.right or checked.new_hash is None:
        return
    await connection.execute(
        _REHASH,
        {
            "user_id": account.id,
            "checked_hash": account.password_hash,
            "new_hash": checked.new_hash,
        },
    )


def reading(engines: Engines) -> AbstractAsyncContextManager[AsyncConnection]:
    """Where `start` reads: an autocommit connection, no BEGIN and no COMMIT."""
    return engines.autocommit.connect()


def writing(engines: Engines) -> AbstractAsyncContextManager[AsyncConnection]:
    """Where `admit` writes, and its transaction: none on PostgreSQL, where each of its
    statements stands alone (the session, its token, its event and the cleared count are one;
    a rehash before it is right whatever follows); on SQLite one around all its writes,
    committed on leaving (rolled back on an error)."""
    if engines.default.dialect.name == "postgresql":
        return engines.autocommit.connect()
    return engines.default.begin()


async def start(connection: AsyncConnection, *, email: str) -> Attempt | AuthFailure:
    """Step 1, reads only: the pause and the account of the address typed."""
    key = throttle.key_for(email)
    try:
        normalized: str | None = normalize_email(email)
    except InvalidEmail:
        normalized = None  # no account can have it; the address is still throttled
    row = (await connection.execute(_START, {"key": key, "email": normalized})).one()
    state = throttle.state_of(locked_until=row.locked_until)
    if state.retry_after is not None:
        return locked(state.retry_after)  # known or unknown address alike, password unread
    account = None
    if row.id is not None:
        account = Account(row.id, row.email, row.display_name, row.password_hash, row.verified)
    return Attempt(key, account)


async def check(attempt: Attempt, password: str) -> Checked:
    """Step 2, hashing only: does the password match (a dummy for an unknown address)."""
    account = attempt.account
    if account is None or account.password_hash.startswith("!"):  # "!": no password is set
        await verify_password(DUMMY_HASH, password)  # the same cost as a real check
        return Checked(attempt, right=False)
    if not await verify_password(account.password_hash, password):
        return Checked(attempt, right=False)
    if needs_rehash(account.password_hash):
        return Checked(attempt, right=True, new_hash=await hash_password(password))
    return Checked(attempt, right=True)


_WRONG = AuthFailure(401, "invalid_credentials", "The email address or password is wrong.")


async def refuse(
    session: AsyncSession, *, settings: Settings, checked: Checked, client: ClientInfo
) -> AuthFailure:
    """Step 3 for a wrong password or an unknown address: count the failure."""
    attempt = checked.attempt
    paused = await count_failure(
        session, settings=settings, key=attempt.key, user=attempt.account, client=client
    )
    return paused or _WRONG


async def admit(
    connection: AsyncConnection,
    *,
    settings: Settings,
    revocations: Revocations,
    checked: Checked,
    client: ClientInfo,
    factor: str | None = None,
    method: str = "password",
) -> TokenPair | AuthFailure:
    """Step 3 for a right password: open the session (on a connection from `writing`), and
    end the account's sessions past the limit (see `open_session`).

    After a second step (see `second_step`), `factor` names the method that completed it, and
    `method` how the first step was made (`oidc`: an external provider's sign-in, where the
    account's hash is checked unchanged as a password's is); the audit event says both."""
    attempt, account = checked.attempt, checked.attempt.account
    if account is None or not checked.right:
        raise ValueError("only a right password opens a session; see `refuse`")
    in_one = connection.dialect.name == "postgresql"
    if not in_one and not connection.in_transaction():
        raise ValueError("on SQLite, `admit` writes in a transaction; see `writing`")
    if not account.verified:
        await throttle.clear(connection, key=attempt.key, unless_paused=True)
        if (paused_for := await throttle.locked_for(connection, key=attempt.key)) is not None:
            return locked(paused_for)  # paused meanwhile: answered as a wrong password is
        return AuthFailure(
            403, "email_not_verified", "Confirm your email address first; we sent you a link."
        )
    checked_hash = account.password_hash
    if checked.new_hash is not None:
        await connection.execute(
            _REHASH,
            {"user_id": account.id, "checked_hash": checked_hash, "new_hash": checked.new_hash},
        )
        checked_hash = checked.new_hash
    extra: dict[str, Any] = {"factor": factor} if factor is not None else {}
    pair = await open_session(
        connection,
        settings=settings,
        revocations=revocations,
        user_id=account.id,
        client=client,
        method=method,
        password=Guard(key=attempt.key, checked_hash=checked_hash),
        **extra,
    )
    if pair is None:  # paused by other attempts, or the password changed, since step 1
        paused_for = await throttle.locked_for(connection, key=attempt.key)
        return _WRONG if paused_for is None else locked(paused_for)
    return pair


@dataclass(frozen=True)
class Guard:
    """What a password's session opens on: the address's throttle key (a pause keeps it
    closed, and the count of failures is cleared as it opens) and the hash that was checked."""

    key: str
    checked_hash: str


async def open_session(
    connection: AsyncConnection,
    *,
    settings: Settings,
    revocations: Revocations,
    user_id: uuid.UUID,
    client: ClientInfo,
    method: str,
    password: Guard | None = None,
    **details: Any,
) -> TokenPair | None:
    """Open a session for a person who proved who they are, on `connection`: the session, its
    refresh token and a `login_ok` audit event (naming `method`, with `details`), then the
    account's sessions past BACKLINE_MAX_SESSIONS ended (`sessions.cap`); the tokens answered.

    On PostgreSQL the three rows are one statement, inside the caller's transaction when it
    has one; on SQLite three INSERTs, which must be in a transaction. With `password` (see
    `admit`), the session opens only while that hash is the account's and the address is not
    paused; None when it did not open (for any method, when the account is gone).
    """
    in_one = connection.dialect.name == "postgresql"
    if not in_one and not connection.in_transaction():
        raise ValueError("on SQLite, a session opens in a transaction; see `writing`")
    moment, session_id, refresh = now(), uuid.uuid4(), new_opaque()
    event = audit.values(
        event="login_ok",
        user_id=user_id,
        client=client,
        session_id=str(session_id),
        method=method,
        **details,
    )
    params: dict[str, Any] = {
        "user_id": user_id,
        "session_id": session_id,
        "user_agent": client.user_agent,
        "ip": client.ip,
        "moment": moment,
        "expires_at": moment + timedelta(days=settings.refresh_token_days),
        "token_id": uuid.uuid4(),
        "token_hash": digest(refresh),
        **{f"event_{name}": value for name, value in event.items()},
    }
    opening = _BY_OTHER_MEANS
    if password is not None:
        opening = _BY_PASSWORD
        params.update(key=password.key, checked_hash=password.checked_hash)
    if in_one:
        opened = (await connection.execute(opening.in_one, params)).first() is not None
    else:
        opened = (await connection.execute(opening.session, params)).rowcount == 1
        if opened:
            await connection.execute(_ADD_TOKEN, params)
            await connection.execute(_ADD_EVENT, params)
            if password is not None:
                # As on PostgreSQL, even a count begun since step 1; SQLite's one writer at a
                # time keeps a pause from coming between the guard and this.
                await throttle.clear(connection, key=password.key, unless_paused=True)
    if not opened:
        return None
    await open_sessions.cap(
        connection,
        revocations=revocations,
        user_id=user_id,
        session_id=session_id,
        limit=settings.max_sessions,
        client=client,
    )
    access = issue_access(
        settings.signing_key,
        user_id=user_id,
        session_id=session_id,
        minutes=settings.access_token_minutes,
    )
    return TokenPair(access, refresh, settings.access_token_minutes * 60, session_id)
