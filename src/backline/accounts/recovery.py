"""Proving an address and recovering an account: register, verify, reset, change.

Nothing here tells a stranger whether an address has an account: registering a known address,
asking for a reset or a new verification link for an unknown one, all answer alike (the route
always says 202) and cost alike (a known address on register still pays for a password hash).
The owner of a known address is told by email instead.

One-time tokens are 32 random bytes, stored hashed (see `tokens`): verification lasts 24 hours,
a reset 1 hour; each works once, and a new reset request voids the older ones. A reset sets the
password, unlocks the account, ends every session, and mails a notice; it does not sign in.
A confirmed change of address voids every other outstanding token, those mailed to the old
address included.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import service as accounts
from backline.accounts import throttle
from backline.accounts.auth import end_sessions
from backline.accounts.emails import InvalidEmail, normalize_email
from backline.accounts.models import AccountToken, TokenPurpose, User
from backline.accounts.names import addressee, check_display_name
from backline.accounts.passwords import check_password, hash_password
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import digest, new_opaque, now
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.email import service as outbox
from backline.errors import BadRequest, Conflict

VERIFY_HOURS = 24
RESET_MINUTES = 60


class InvalidAccountToken(BadRequest):
    code = "invalid_token"


async def _new_token(
    session: AsyncSession,
    *,
    user: User,
    purpose: TokenPurpose,
    lifetime: timedelta,
    new_email: str | None = None,
) -> str:
    """Issue a token, voiding the user's unused tokens of the same purpose."""
    moment = now()
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=moment)
        .execution_options(synchronize_session=False)
    )
    token = new_opaque()
    session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose.value,
            token_hash=digest(token),
            new_email=new_email,
            created_at=moment,
            expires_at=moment + lifetime,
        )
    )
    await session.flush()
    return token


async def void_tokens(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Void every unused one-time token of the user, whatever its purpose.

    A password reset or change must also cancel a pending email change: else whoever knew the
    old password keeps a way back into the account. A confirmed email change voids the links
    sent to the old address, the same way.
    """
    await session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.used_at.is_(None))
        .values(used_at=now())
        .execution_options(synchronize_session=False)
    )


async def _usable(
    session: AsyncSession, *, token: str, purposes: tuple[TokenPurpose, ...]
) -> AccountToken:
    """The token's row, locked, if it is of these purposes, unused and unexpired.

    The caller marks it used once every other check has passed, so that a refused request
    (a weak new password, say) leaves the link working.
    """
    row = await session.scalar(
        select(AccountToken).where(AccountToken.token_hash == digest(token)).with_for_update()
    )
    if (
        row is None
        or row.purpose not in {p.value for p in purposes}
        or row.used_at is not None
        or row.expires_at <= now()
    ):
        raise InvalidAccountToken("This link is invalid or has expired; ask for a new one.")
    return row


async def send_verification(session: AsyncSession, *, settings: Settings, user: User) -> None:
    token = await _new_token(
        session,
        user=user,
        purpose=TokenPurpose.VERIFY_EMAIL,
        lifetime=timedelta(hours=VERIFY_HOURS),
    )
    await outbox.enqueue(
        session,
        settings=settings,
        template="verify_email",
        to_address=user.email,
        to_name=None,  # the address is unconfirmed: no name the registrant typed (see `names`)
        context={"token": token, "expires_hours": VERIFY_HOURS},
    )


async def register(
    session: AsyncSession,
    *,
    settings: Settings,
    http: httpx.AsyncClient,
    email: str,
    password: str,
    display_name: str,
    client: ClientInfo,
) -> None:
    # Every check of the input comes before the address is looked up: a bad name, password
    # or address is refused alike whether or not the address has an account.
    normalized = normalize_email(email)
    name = check_display_name(display_name)
    await check_password(
        password, email=normalized, display_name=name, settings=settings, http=http
    )
    existing = await accounts.get_by_email(session, email=normalized)
    if existing is not None:
        await hash_password(password)  # the cost of a real sign-up, so timing tells nothing
        await outbox.enqueue(
            session,
            settings=settings,
            template="signup_attempt",
            to_address=existing.email,
            to_name=addressee(existing),
            # At most one notice per address per day, however often someone tries.
            idempotency_key=f"signup-attempt:{existing.id}:{now():%Y-%m-%d}",
        )
        await audit.record(
            session,
            event="signup_attempt_existing",
            user_id=existing.id,
            client=client,
        )
        return
    user = await accounts.create(session, email=normalized, password=password, display_name=name)
    await audit.record(session, event="registered", user_id=user.id, client=client)
    await send_verification(session, settings=settings, user=user)


async def resend_verification(session: AsyncSession, *, settings: Settings, email: str) -> None:
    try:
        user = await accounts.get_by_email(session, email=email)
    except InvalidEmail:
        return
    if user is not None and not user.is_verified:
        await send_verification(session, settings=settings, user=user)


async def verify_email(session: AsyncSession, *, token: str, client: ClientInfo) -> User:
    row = await _usable(
        session, token=token, purposes=(TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL)
    )
    user = await session.get(User, row.user_id)
    assert user is not None
    if row.purpose == TokenPurpose.CHANGE_EMAIL.value and row.new_email:
        taken = await session.scalar(
            select(User.id).where(func.lower(User.email) == row.new_email, User.id != user.id)
        )
        if taken is not None:
            raise Conflict("That address now belongs to another account.", code="email_taken")
        user.email = row.new_email
        try:
            await session.flush()  # the unique index settles a race with a new sign-up
        except IntegrityError:
            raise Conflict(
                "That address now belongs to another account.", code="email_taken"
            ) from None
        # Links mailed to the old address (a reset, a verification) must not outlive it:
        # whoever reads that inbox no longer speaks for the account.
        await void_tokens(session, user_id=user.id)
        row.used_at = now()
        await audit.record(
            session,
            event="email_changed",
            user_id=user.id,
            client=client,
        )
    row.used_at = now()
    user.email_verified_at = now()
    await audit.record(session, event="email_verified", user_id=user.id, client=client)
    return user


async def forgot_password(
    session: AsyncSession, *, settings: Settings, email: str, client: ClientInfo
) -> None:
    try:
        user = await accounts.get_by_email(session, email=email)
    except InvalidEmail:
        return
    if user is None:
        return
    token = await _new_token(
        session,
        user=user,
        purpose=TokenPurpose.RESET_PASSWORD,
        lifetime=timedelta(minutes=RESET_MINUTES),
    )
    await outbox.enqueue(
        session,
        settings=settings,
        template="password_reset",
        to_address=user.email,
        to_name=addressee(user),
        context={"token": token, "expires_minutes": RESET_MINUTES},
    )
    await audit.record(
        session,
        event="reset_requested",
        user_id=user.id,
        client=client,
    )


async def _set_password(
    session: AsyncSession, *, settings: Settings, user: User, password: str
) -> None:
    user.password_hash = await hash_password(password)
    user.password_changed_at = now()
    # Written now, not at commit: the row lock makes a sign-in that checked the old password
    # wait, then find the hash changed (`signin`), and a session opened just before is on
    # record for the revocation that follows.
    await session.flush()
    await outbox.enqueue(
        session,
        settings=settings,
        template="password_changed",
        to_address=user.email,
        to_name=addressee(user),
        context={"changed_at": f"{user.password_changed_at:%Y-%m-%d %H:%M} UTC"},
    )


async def reset_password(
    session: AsyncSession,
    *,
    settings: Settings,
    http: httpx.AsyncClient,
    revocations: Revocations,
    token: str,
    new_password: str,
    client: ClientInfo,
) -> None:
    row = await _usable(session, token=token, purposes=(TokenPurpose.RESET_PASSWORD,))
    user = await session.get(User, row.user_id)
    assert user is not None
    await check_password(
        new_password, email=user.email, display_name=user.display_name, settings=settings, http=http
    )
    row.used_at = now()
    await void_tokens(session, user_id=user.id)
    await _set_password(session, settings=settings, user=user, password=new_password)
    await throttle.clear(session, key=throttle.key_for(user.email))
    if user.email_verified_at is None:
        user.email_verified_at = now()  # the reset link proved the address
    await end_sessions(session, revocations=revocations, user_id=user.id, reason="password_reset")
    await audit.record(session, event="reset_done", user_id=user.id, client=client)


async def change_password(
    session: AsyncSession,
    *,
    settings: Settings,
    http: httpx.AsyncClient,
    revocations: Revocations,
    user: User,
    current_session: uuid.UUID,
    new_password: str,
    client: ClientInfo,
) -> int:
    """Change the password; every other session ends. Returns how many did.

    The caller has checked the current password (`auth.check_password_again`).
    """
    await check_password(
        new_password, email=user.email, display_name=user.display_name, settings=settings, http=http
    )
    await void_tokens(session, user_id=user.id)
    await _set_password(session, settings=settings, user=user, password=new_password)
    ended = await end_sessions(
        session,
        revocations=revocations,
        user_id=user.id,
        reason="password_changed",
        keep=current_session,
    )
    await audit.record(
        session,
        event="password_changed",
        user_id=user.id,
        client=client,
        sessions_ended=ended,
    )
    return ended


async def request_email_change(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    new_email: str,
    client: ClientInfo,
) -> None:
    """Send a confirmation link to the new address and a notice to the old one.

    An address that already has an account gets no link, but the answer is the same: a
    signed-in user must not be able to test which addresses are registered. The caller has
    checked the current password (`auth.check_password_again`).
    """
    normalized = normalize_email(new_email)
    if normalized == user.email:
        return
    taken = await accounts.get_by_email(session, email=normalized) is not None
    await outbox.enqueue(
        session,
        settings=settings,
        template="email_change_requested",
        to_address=user.email,
        to_name=addressee(user),
        context={"new_email": normalized},
    )
    await audit.record(
        session,
        event="email_change_requested",
        user_id=user.id,
        client=client,
    )
    if taken:
        return
    token = await _new_token(
        session,
        user=user,
        purpose=TokenPurpose.CHANGE_EMAIL,
        lifetime=timedelta(hours=VERIFY_HOURS),
        new_email=normalized,
    )
    await outbox.enqueue(
        session,
        settings=settings,
        template="verify_email",
        to_address=normalized,
        to_name=None,  # not yet shown to belong to this person: no name in it (see `names`)
        context={"token": token, "expires_hours": VERIFY_HOURS},
    )
